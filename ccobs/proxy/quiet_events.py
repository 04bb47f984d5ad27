"""Stream events with nothing to account, recognised on their bytes and passed on undecoded.

The relay reads along every event it passes on, yet most of a stream carries
nothing its accounting needs: once the first token is in, Anthropic's
``content_block_delta`` events only repeat that output is being produced (the
output count comes from ``message_delta``), and pings and block starts and
stops are never read at all; on the Responses API, every event but the last
few is a delta or an item event that is read by its name alone. Decoding each
such event into a :class:`~ccobs.proxy.sse.ServerSentEvent` and parsing its
JSON costs several times what relaying its bytes does, and it is paid per
event, so the number of streams one core holds depends on it.

A chunk that arrives between events and is made only of such events, each in
the framing both APIs use (``event: name``, one ``data:`` line, a blank
line), is matched here by one regular expression and relayed without being
decoded. The match is exact, not a guess: a chunk is quiet only when
:class:`~ccobs.proxy.sse.SSEDecoder` would decode it into those same events
(it stays between events after it) and :meth:`~ccobs.proxy.usage.StreamUsage.feed`
would return False for each and change nothing, raise nothing. Concretely:

- an event skipped by name: Anthropic's names other than those
  ``StreamUsage`` reads (its data is never parsed, so any data line will do);
  the Responses API's names other than its final and error events, and after
  the first token its ``*.delta`` events too;
- Anthropic's ``content_block_delta`` once the first token is in, only in its
  compact shape ``{"type":"content_block_delta","index":N,"delta":{"type":"...","...":"..."}}``
  with a valid JSON string, which the JSON parser accepts into a dict of
  that type whatever the string holds; any other shape (spaces, another key
  order, a number too long to be an ``int``) takes the decoding path;
- an OpenAI Chat chunk once the first token is in, in its compact shape with
  no ``usage`` (or ``null``), no ``error``, at most one choice and no
  ``finish_reason``, and only the keys and kinds of value listed below.

In a chunk that also holds events to read (several events arrive together
when the proxy or the client falls behind), the quiet ones are skipped one by
one inside the decoder (``SSEDecoder.feed``'s ``skip``) and the rest decoded.

Anything else (a comment, a chunk ending mid-event, a tool call's delta)
goes through the decoder and ``StreamUsage`` as before.
``tests/test_quiet_events.py`` checks the two paths agree on generated streams.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ccobs.proxy.usage import Api

QuietMatch = Callable[[bytes], "re.Match[bytes] | None"]
"""``fullmatch`` of a chunk: a match when every event in it has nothing to account."""

_ANY_DATA = rb"data: [^\r\n]*\n\n"
_JSON_STRING = rb'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+"'
"""A JSON string as the parser accepts it (strict: no raw control characters). Bytes
past ASCII decode (with replacement) to characters that are never a quote, a
backslash or a control character, so the bytes decide as the text would."""

_ANTHROPIC_UNREAD = (
    rb"event: (?!(?:message_start|content_block_delta|message_delta|message_stop|error)\n)"
    rb"[^\r\n]*\n" + _ANY_DATA
)
_ANTHROPIC_DELTA = (
    rb'event: content_block_delta\ndata: \{"type":"content_block_delta",'
    rb'"index":(?:0|[1-9][0-9]{0,17}),'  # an int the parser reads: not "01", not 5000 digits
    rb'"delta":\{"type":"[a-z_]{1,64}","[a-z_]{1,64}":' + _JSON_STRING + rb"\}\}\n\n"
)
_RESPONSES_READ = rb"(?:response\.completed|response\.failed|response\.incomplete|error)\n"
_RESPONSES_UNREAD_AFTER = rb"event: (?!" + _RESPONSES_READ + rb")[^\r\n]*\n" + _ANY_DATA
_RESPONSES_UNREAD_BEFORE = (
    rb"event: (?!" + _RESPONSES_READ + rb")(?![^\r\n]*\.delta\n)[^\r\n]*\n" + _ANY_DATA
)

_INT = rb"-?(?:0|[1-9][0-9]{0,17})"  # an int the parser reads (not "01", not 5000 digits)
_TEXT_OR_NULL = rb"(?:" + _JSON_STRING + rb"|null)"
_OPENAI_DELTA = rb'"(?:content|role|refusal)":' + _TEXT_OR_NULL
_OPENAI_CHOICE_MEMBER = (
    rb'(?:"index":' + _INT + rb'|"(?:logprobs|finish_reason)":null'
    rb'|"delta":\{(?:' + _OPENAI_DELTA + rb"(?:," + _OPENAI_DELTA + rb")*)?\})"
)
_OPENAI_MEMBER = (
    rb'(?:"(?:id|object|model|system_fingerprint|service_tier|obfuscation)":' + _TEXT_OR_NULL
    + rb'|"created":' + _INT + rb'|"usage":null'
    + rb'|"choices":\[(?:\{' + _OPENAI_CHOICE_MEMBER + rb"(?:," + _OPENAI_CHOICE_MEMBER
    + rb")*\})?\])"
)  # fmt: skip
_OPENAI_CHUNK = rb"data: \{" + _OPENAI_MEMBER + rb"(?:," + _OPENAI_MEMBER + rb")*\}\n\n"
"""A Chat chunk with no usage, no error, no finish reason and at most one choice: after the
first token its content changes nothing (the slow path stops at the first choice with
content). Keys outside these, or values of other kinds, take the decoding path."""


def _chunk_of(*events: bytes) -> QuietMatch:
    return re.compile(b"(?:" + b"|".join(events) + b")+").fullmatch


_QUIET: dict[str, tuple[QuietMatch | None, QuietMatch | None]] = {
    "anthropic": (_chunk_of(_ANTHROPIC_UNREAD), _chunk_of(_ANTHROPIC_DELTA, _ANTHROPIC_UNREAD)),
    "responses": (_chunk_of(_RESPONSES_UNREAD_BEFORE), _chunk_of(_RESPONSES_UNREAD_AFTER)),
    "openai": (None, _chunk_of(_OPENAI_CHUNK)),
}


QuietEvent = Callable[[bytes, int], "re.Match[bytes] | None"]
"""``match`` at a position: one whole event there that has nothing to account."""


def _event_of(*events: bytes) -> QuietEvent:
    return re.compile(b"|".join(events)).match


_QUIET_EVENT: dict[str, tuple[QuietEvent | None, QuietEvent | None]] = {
    "anthropic": (_event_of(_ANTHROPIC_UNREAD), _event_of(_ANTHROPIC_DELTA, _ANTHROPIC_UNREAD)),
    "responses": (_event_of(_RESPONSES_UNREAD_BEFORE), _event_of(_RESPONSES_UNREAD_AFTER)),
    "openai": (None, _event_of(_OPENAI_CHUNK)),
}


def quiet_event_matchers(api: Api) -> tuple[QuietEvent | None, QuietEvent | None]:
    """One quiet event at a position (``SSEDecoder.feed``'s ``skip``): before the first
    token, and after it. In a chunk of several events, the ones before the first token
    may turn it: the events that are quiet before it are quiet after it too, so the
    matcher for the state at the chunk's start is exact for the whole chunk."""
    return _QUIET_EVENT[api]


def quiet_matchers(api: Api) -> tuple[QuietMatch | None, QuietMatch | None]:
    """The quiet-chunk matchers of ``api``: before the first token, and after it.

    None where no chunk can be quiet. Only for a chunk fed to a decoder that
    is between events (``SSEDecoder.open_bytes == 0``).
    """
    return _QUIET[api]
