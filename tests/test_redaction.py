"""Secrets never survive ccobs.redaction, and ordinary data passes untouched."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccobs.redaction import (
    _ASSIGNMENT_PROBES,
    MAX_DEPTH,
    REDACTED,
    SENSITIVE_HEADER_NAMES,
    _has_assignment_probe,
    is_sensitive_key,
    redact,
    redact_headers,
    redact_text,
)

# Shaped like real keys, never valid ones.
ANTHROPIC_KEY = (
    "sk-ant-api03-"
    + "Ab3dEf9hIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKlMnOpQrStUvWxYz012345-AAAAAA"
)
OPENAI_LEGACY_KEY = "sk-" + "T3BlbkFJ" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8s9T0"
OPENAI_PROJECT_KEY = (
    "sk-proj-" + "Xy9_Zw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7" + "T3BlbkFJ" + "Qw1Er2Ty3Ui4"
)
OPENAI_SERVICE_KEY = "sk-svcacct-" + "AbCdEf123456GhIjKl789012MnOpQr345678"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


def test_redacted_marker_is_bracketed_word() -> None:
    assert REDACTED == "[REDACTED]"


@pytest.mark.parametrize(
    "header",
    [
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "x-auth-token",
        "anthropic-api-key",
        "openai-api-key",
    ],
)
def test_sensitive_header_names_cover_auth_cookie_and_provider_key_headers(header: str) -> None:
    assert header in SENSITIVE_HEADER_NAMES


@pytest.mark.parametrize(
    "name", ["Authorization", "X-API-KEY", "x_api_key", "API_KEY", "api_key", "Set_Cookie"]
)
def test_is_sensitive_key_ignores_case_and_treats_underscore_as_dash(name: str) -> None:
    assert is_sensitive_key(name)


@pytest.mark.parametrize(
    "name", ["content-type", "user-agent", "input_tokens", "token_type", "model", "keys"]
)
def test_is_sensitive_key_rejects_ordinary_names(name: str) -> None:
    assert not is_sensitive_key(name)


def test_redact_text_removes_anthropic_key() -> None:
    assert redact_text(f"upstream rejected {ANTHROPIC_KEY}.") == f"upstream rejected {REDACTED}."


@pytest.mark.parametrize("key", [OPENAI_LEGACY_KEY, OPENAI_PROJECT_KEY, OPENAI_SERVICE_KEY])
def test_redact_text_removes_openai_keys(key: str) -> None:
    assert redact_text(f"key={key} sent") == f"key={REDACTED} sent"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_redact_text_replaces_bearer_token_but_keeps_the_scheme_word(scheme: str) -> None:
    assert redact_text(f"got {scheme} {JWT} from client") == f"got {scheme} {REDACTED} from client"


def test_redact_text_removes_basic_auth_credentials_from_urls() -> None:
    text = "POST https://alice:s3cr3t-pass@api.example.com:8443/v1/messages failed"
    assert redact_text(text) == f"POST https://{REDACTED}@api.example.com:8443/v1/messages failed"


def test_redact_text_removes_secret_query_parameters() -> None:
    text = "Client error for url 'https://api.example.com/v1?model=x&api_key=abc123&key=zz9'"
    assert redact_text(text) == (
        f"Client error for url 'https://api.example.com/v1?model=x&api_key={REDACTED}&key={REDACTED}'"
    )


def test_redact_text_removes_sensitive_values_from_dict_reprs() -> None:
    headers = {"x-api-key": "plain-secret", "content-type": "application/json"}
    assert redact_text(repr(headers)) == (
        f"{{'x-api-key': '{REDACTED}', 'content-type': 'application/json'}}"
    )


def test_redact_text_removes_basic_authorization_header_line() -> None:
    assert redact_text("Authorization: Basic dXNlcjpwYXNz") == f"Authorization: {REDACTED}"


def test_redact_text_returns_ordinary_text_unchanged() -> None:
    text = "request completed method=POST path=/v1/messages status=200 duration=1.25"
    assert redact_text(text) is text


@pytest.mark.parametrize("probe", _ASSIGNMENT_PROBES)
def test_every_assignment_probe_is_looked_for(probe: str) -> None:
    """The probe check is spelled out for speed: it must look for every listed probe."""
    assert _has_assignment_probe(f"x-{probe}-y")


def test_text_with_no_assignment_probe_is_not_scanned_for_assignments() -> None:
    assert not _has_assignment_probe("2026-12-04t16:30:07.448z model: claude")


@pytest.mark.parametrize("text", ["task-manager disk-usage", "sk-short", "mask-ant-colony"])
def test_redact_text_ignores_sk_inside_words_and_short_strings(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize("glue", ["team-", "team_", "x"])
@pytest.mark.parametrize(
    "key", ["sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx", "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx"]
)
def test_redact_text_removes_a_key_glued_to_a_preceding_word(glue: str, key: str) -> None:
    assert redact_text(f"agent {glue}{key} done") == f"agent {glue}{REDACTED} done"


@given(
    body=st.text(
        alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
        min_size=20,
        max_size=100,
    ),
    prefix=st.text(max_size=30),
    suffix=st.text(max_size=30),
)
def test_redact_text_never_lets_an_anthropic_key_through(
    body: str, prefix: str, suffix: str
) -> None:
    key = f"sk-ant-api03-{body}"
    assert key not in redact_text(f"{prefix} {key} {suffix}")


@given(text=st.text(max_size=200))
def test_redact_text_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


def test_redact_replaces_sensitive_values_wholesale_whatever_their_type() -> None:
    event = {"api_key": 12345, "Cookie": ["a=1", "b=2"], "password": None, "model": "claude"}
    assert redact(event) == {
        "api_key": REDACTED,
        "Cookie": REDACTED,
        "password": REDACTED,
        "model": "claude",
    }


def test_redact_recurses_into_nested_dicts_lists_and_tuples() -> None:
    value = {
        "request": {"headers": {"Authorization": f"Bearer {JWT}"}, "args": (ANTHROPIC_KEY, 1)},
        "history": [{"note": f"used {OPENAI_PROJECT_KEY}"}],
    }
    assert redact(value) == {
        "request": {"headers": {"Authorization": REDACTED}, "args": (REDACTED, 1)},
        "history": [{"note": f"used {REDACTED}"}],
    }


def test_redact_does_not_mutate_its_input() -> None:
    value: dict[str, Any] = {
        "x-api-key": "k",
        "nested": [{"authorization": "Bearer t"}],
        "t": ("sk-ant-abcdefgh",),
    }
    snapshot = copy.deepcopy(value)
    redact(value)
    assert value == snapshot


def test_redact_returns_non_container_non_string_values_unchanged() -> None:
    marker = object()
    for value in (42, 1.5, True, None, b"sk-ant-bytes-are-opaque", marker):
        assert redact(value) is value


def test_redact_stringify_redacts_reprs_of_other_objects() -> None:
    error = RuntimeError(f"upstream said {ANTHROPIC_KEY}")
    assert redact(error, stringify=True) == f"RuntimeError('upstream said {REDACTED}')"


def test_redact_scans_mapping_keys_as_text() -> None:
    assert redact({ANTHROPIC_KEY: 1}) == {REDACTED: 1}


def test_redact_stops_at_max_depth_instead_of_recursing_forever() -> None:
    deep: list[Any] = []
    cursor = deep
    for _ in range(MAX_DEPTH * 10):
        cursor.append([])
        cursor = cursor[0]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    redact(deep)
    result = redact(cyclic)
    for _ in range(MAX_DEPTH):
        result = result[0]
    assert result == REDACTED


def test_redact_headers_redacts_sensitive_headers_from_a_mapping() -> None:
    headers = {"X-Api-Key": ANTHROPIC_KEY, "Content-Type": "application/json"}
    assert redact_headers(headers) == {"X-Api-Key": REDACTED, "Content-Type": "application/json"}


def test_redact_headers_scans_values_of_other_headers() -> None:
    headers = {"Referer": "https://u:p@example.com/page"}
    assert redact_headers(headers) == {"Referer": f"https://{REDACTED}@example.com/page"}


def test_redact_headers_joins_repeated_names_from_pairs() -> None:
    pairs = [
        ("accept", "text/plain"),
        ("set-cookie", "a=1"),
        ("accept", "json"),
        ("set-cookie", "b=2"),
    ]
    assert redact_headers(pairs) == {"accept": "text/plain, json", "set-cookie": REDACTED}


def test_redact_headers_accepts_httpx_headers() -> None:
    headers = httpx.Headers({"authorization": f"Bearer {JWT}", "anthropic-version": "2023-06-01"})
    assert redact_headers(headers.multi_items()) == {
        "authorization": REDACTED,
        "anthropic-version": "2023-06-01",
    }


class Label(str):
    """A subclass of ``str``, as an enum or a library's own string type would be."""


def test_redact_scans_subclasses_of_str_in_mappings_and_alone() -> None:
    secret = Label(f"key {ANTHROPIC_KEY}")
    assert ANTHROPIC_KEY not in str(redact({"detail": secret, Label("x_api_key"): "v"}))
    assert redact(secret) == f"key {REDACTED}"
