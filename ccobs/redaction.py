"""Keep credentials out of logs, metric labels and stored access logs.

A proxy for LLM APIs handles provider keys on every request, and the easiest
way to leak one is a log line: a header dict, an upstream URL with basic-auth,
an exception message that echoes the request. Everything that leaves the
process through ccobs goes through :func:`redact` first.

Two layers: values under sensitive *keys* (``authorization``, ``x-api-key``,
``cookie``...) are replaced wholesale whatever they look like, and free text
is scanned for things that look like secrets wherever they appear. The text
scan runs on every log line, so it starts with plain substring checks and only
reaches for regular expressions when one of them hits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "MAX_DEPTH",
    "REDACTED",
    "SENSITIVE_HEADER_NAMES",
    "SENSITIVE_KEYS",
    "is_sensitive_key",
    "redact",
    "redact_field_value",
    "redact_headers",
    "redact_text",
]

REDACTED: Final = "[REDACTED]"

MAX_DEPTH: Final = 32
"""Nesting depth past which :func:`redact` stops descending and replaces the
value wholesale: it bounds the work per log line and survives cyclic data."""


def _normalise(name: str) -> str:
    # HTTP header names are case-insensitive, and the same names turn up as
    # Python identifiers (``x_api_key``) and env-style keys (``X_API_KEY``).
    return name.strip().lower().replace("_", "-")


SENSITIVE_HEADER_NAMES: Final[frozenset[str]] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "apikey",
        "x-apikey",
        "cookie",
        "set-cookie",
        "x-auth-token",
        "x-access-token",
        "x-session-token",
        "x-csrf-token",
        "x-xsrf-token",
        "anthropic-api-key",
        "x-anthropic-api-key",
        "openai-api-key",
        "x-openai-api-key",
        "azure-openai-api-key",
        "x-goog-api-key",
        "x-amz-security-token",
    }
)
"""Header names whose values are credentials, normalised: lower case, ``-``.

Compare through :func:`is_sensitive_key`, which normalises the other side.
"""

SENSITIVE_KEYS: Final[frozenset[str]] = SENSITIVE_HEADER_NAMES | frozenset(
    {
        "access-token",
        "refresh-token",
        "id-token",
        "auth-token",
        "session-token",
        "bearer-token",
        "client-secret",
        "api-secret",
        "secret-key",
        "private-key",
        "password",
        "passwd",
        "secret",
        "credentials",
    }
)
"""Mapping keys (headers plus common field names) whose values are redacted
wholesale by :func:`redact`, normalised like :data:`SENSITIVE_HEADER_NAMES`."""


def is_sensitive_key(name: str) -> bool:
    """Whether a header or field called ``name`` carries a credential.

    Case-insensitive, with ``-`` and ``_`` equivalent, so ``X-Api-Key``,
    ``x_api_key`` and ``X_API_KEY`` all match.
    """
    return _normalise(name) in SENSITIVE_KEYS


@functools.lru_cache(maxsize=4096)
def _classify_key(key: str) -> tuple[str, bool]:
    # Log events reuse the same few dozen keys on every line: caching the
    # (redacted key, is sensitive) pair saves most of redact()'s per-key work.
    return redact_text(key), is_sensitive_key(key)


# --- free-text patterns -----------------------------------------------------

# Characters provider keys are made of. The look-behind stops matches in the
# middle of words such as ``task-manager`` or ``disk-usage``; a key glued to a
# word (``team-sk-ant-...``) is still caught by its unmistakable prefix followed
# by at least 20 key characters, which no ordinary word has.
_KEY_CHARS = r"[A-Za-z0-9_\-]"
_API_KEY_RE: Final = re.compile(
    r"(?<![A-Za-z0-9_\-])sk-(?:"
    rf"ant-{_KEY_CHARS}{{4,}}"  # Anthropic: sk-ant-api03-..., sk-ant-admin01-...
    rf"|(?:proj|svcacct|admin|None)-{_KEY_CHARS}{{8,}}"  # OpenAI project/service/user
    rf"|[A-Za-z0-9]{_KEY_CHARS}{{15,}}"  # OpenAI legacy sk-<48 chars>, look-alikes
    r")"
    rf"|sk-(?:ant|proj|svcacct|admin)-{_KEY_CHARS}{{20,}}"  # glued to a preceding word
)
# RFC 6750 b64token. The scheme word is kept so the line still says what kind
# of credential was there.
_BEARER_RE: Final = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
# scheme://user:password@host -> scheme://[REDACTED]@host. The whole userinfo
# goes: tokens are often passed as the user part with an empty password.
_URL_USERINFO_RE: Final = re.compile(
    r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@:\"'<>]*:[^/?#\s@\"'<>]*@"
)
# ?api_key=...&token=... in URLs quoted inside messages (httpx errors do this).
_QUERY_SECRET_RE: Final = re.compile(
    r"(?i)([?&;](?:api[_\-]?key|key|access[_\-]?token|refresh[_\-]?token|token|"
    r"auth|password|secret|client[_\-]?secret|sig|signature)=)[^&#\s\"'<>]+"
)
# Reprs and dumps of header dicts inside messages: {'x-api-key': 'abc'},
# "authorization: Basic ...", api_key=abc. Quoted values are taken to the
# closing quote; unquoted ones to the next separator, after an optional
# auth scheme word (``Basic``, ``Bearer``...).
_NAME_ALTERNATION = "|".join(
    sorted(
        ("[_\\-]".join(re.escape(part) for part in name.split("-")) for name in SENSITIVE_KEYS),
        key=len,
        reverse=True,
    )
)
_ASSIGNMENT_RE: Final = re.compile(
    rf"(?i)(?<![A-Za-z0-9_\-])((?:{_NAME_ALTERNATION})[\"']?\s*[:=]\s*)"
    r"(\"[^\"]*\"|'[^']*'|(?:(?:basic|bearer|token|digest|negotiate)\s+)?"
    rf"(?:{re.escape(REDACTED)}|[^\s\"',;&}}\])]+))"
)

# Lower-case fragments of the sensitive key names, probed before the
# assignment regex: `in` on a str is a fast C scan, while a case-insensitive
# alternation over every key name is the slowest pattern here by far.
_ASSIGNMENT_PROBES: Final = ("key", "auth", "token", "cookie", "secret", "passw", "credential")


def redact_text(text: str) -> str:
    """Return ``text`` with anything that looks like a credential replaced.

    Covers Anthropic and OpenAI API keys, ``Bearer`` tokens (the word
    ``Bearer`` is kept), ``user:password@`` in URLs, secret-named query
    parameters and ``name: value`` / ``name=value`` pairs whose name is a
    sensitive key. Errs on the side of redaction: ``bearer <word>`` loses the
    word even in prose.
    """
    # Probes look at the original text: substitutions only ever remove
    # material, and REDACTED itself contains no probe.
    original = text
    if "sk-" in original:
        text = _API_KEY_RE.sub(REDACTED, text)
    if "earer" in original or "EARER" in original:
        text = _BEARER_RE.sub(rf"\g<1>{REDACTED}", text)
    if "@" in original and "://" in original:
        text = _URL_USERINFO_RE.sub(rf"\g<1>{REDACTED}@", text)
    if "=" in original:
        if "?" in original or "&" in original or ";" in original:
            text = _QUERY_SECRET_RE.sub(rf"\g<1>{REDACTED}", text)
        if _has_assignment_probe(original.lower()):
            text = _ASSIGNMENT_RE.sub(_replace_assignment, text)
    elif ":" in original and _has_assignment_probe(original.lower()):
        text = _ASSIGNMENT_RE.sub(_replace_assignment, text)
    return text


def _has_assignment_probe(lowered: str) -> bool:
    # Spelled out rather than ``any()`` over the tuple: a generator per call costs
    # more than the scans (every timestamp has a ``:``). A test keeps the two alike.
    return (
        "key" in lowered
        or "auth" in lowered
        or "token" in lowered
        or "cookie" in lowered
        or "secret" in lowered
        or "passw" in lowered
        or "credential" in lowered
    )


def _replace_assignment(match: re.Match[str]) -> str:
    prefix, value = match.group(1), match.group(2)
    # Already-redacted values (``Bearer [REDACTED]``) are left alone, which
    # also makes redaction idempotent.
    if REDACTED in value:
        return match.group(0)
    quote = value[0] if value[0] in "\"'" else ""
    return f"{prefix}{quote}{REDACTED}{quote}"


# --- structured values ------------------------------------------------------

_SCALARS: Final = (int, float, bool, type(None))
_EXACT_SCALARS: Final = frozenset(_SCALARS)
"""The scalar types themselves: an exact-type test answers most values in one set
lookup, where ``isinstance`` against the tuple tries its members in turn."""


def redact(value: Any, *, stringify: bool = False) -> Any:
    """Return a redacted copy of ``value``; the input is never mutated.

    Mappings are copied into dicts with the values of sensitive keys replaced
    wholesale and the keys themselves scanned as text; lists, tuples and sets
    are copied element by element; strings go through :func:`redact_text`.
    Anything else is returned unchanged or, with ``stringify=True``, replaced
    by the redacted ``repr`` a log renderer would print for it anyway, so an
    exception object or a custom class whose repr echoes a key cannot leak.
    Past :data:`MAX_DEPTH` levels of nesting the value becomes :data:`REDACTED`.
    """
    return _redact(value, 0, stringify)


def redact_field_value(value: Any) -> Any:
    """``value`` redacted as ``redact(mapping, stringify=True)`` redacts a mapping's value.

    One level down, so the depth cut falls where it falls for the whole line:
    ``ccobs.redaction_memo`` redacts a log line field by field with it.
    """
    return _redact(value, 1, True)


def _redact(value: Any, depth: int, stringify: bool) -> Any:
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _EXACT_SCALARS:
        return value
    if isinstance(value, str):  # a subclass of str
        return redact_text(value)
    if isinstance(value, _SCALARS):
        return value
    if depth >= MAX_DEPTH:
        return REDACTED
    if isinstance(value, Mapping):
        return _redact_mapping(value, depth, stringify)
    if isinstance(value, list):
        return [_redact(item, depth + 1, stringify) for item in value]
    if isinstance(value, tuple):
        return tuple(_redact(item, depth + 1, stringify) for item in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(_redact(item, depth + 1, stringify) for item in value)
    if stringify:
        try:
            return redact_text(repr(value))
        except Exception:  # a broken __repr__ must not break logging
            return f"<unrepresentable {type(value).__name__}>"
    return value


def _redact_mapping(value: Mapping[Any, Any], depth: int, stringify: bool) -> dict[Any, Any]:
    # Every log line is a mapping of mostly strings and numbers: those are
    # answered here, without a call of ``_redact`` per value.
    result: dict[Any, Any] = {}
    scalars = _EXACT_SCALARS
    for key, item in value.items():
        if type(key) is str or isinstance(key, str):
            key, sensitive = _classify_key(key)
            if sensitive:
                result[key] = REDACTED
                continue
        kind = type(item)
        if kind is str:
            result[key] = redact_text(item)
        elif kind in scalars:
            result[key] = item
        else:
            result[key] = _redact(item, depth + 1, stringify)
    return result


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]],
) -> dict[str, str]:
    """Headers as a plain dict fit for a log line or an access-log record.

    Sensitive headers keep their name and lose their value; every other value
    still goes through :func:`redact_text`, since keys turn up in unexpected
    headers (``referer`` URLs, custom ``x-*`` headers). Repeated names (an
    iterable of pairs, as ASGI and httpx ``multi_items()`` give) are joined
    with ``", "`` the way HTTP folds them. ASGI's raw ``bytes`` pairs are
    decoded as latin-1, the HTTP header encoding.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    result: dict[str, str] = {}
    for raw_name, raw_value in items:
        name = raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name
        value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
        value = REDACTED if is_sensitive_key(name) else redact_text(value)
        if name in result and value != REDACTED:
            result[name] = f"{result[name]}, {value}"
        else:
            result[name] = value
    return result
