"""Session ids: kept in a bounded, plain shape for the access log, anything else dropped."""

from __future__ import annotations

import pytest

from ccobs.session import MAX_SESSION_ID_CHARS, accept_session_id

UUID = "3f2b1c9e-0a4d-4c1e-9b7a-1234567890ab"


def test_a_uuid_is_kept() -> None:
    assert accept_session_id(UUID.encode()) == UUID


def test_a_plain_token_is_kept() -> None:
    assert accept_session_id(b"thread_01J9:run.7") == "thread_01J9:run.7"


def test_the_longest_plain_token_is_kept() -> None:
    token = b"a" * MAX_SESSION_ID_CHARS

    assert accept_session_id(token) == token.decode()


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"a" * (MAX_SESSION_ID_CHARS + 1),
        b"line\nbreak",
        b'quote"d',
        b"with space",
        b"caf\xc3\xa9",
        b"\x00",
        b"sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789",
        b"sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        b"sk-_HHfFvWS71zCi9-tVsLZIjDxzrYqCaASIDRvZXmy",
        b"key:SK-abcdef",
    ],
)
def test_anything_else_is_dropped(value: bytes | None) -> None:
    assert accept_session_id(value) is None
