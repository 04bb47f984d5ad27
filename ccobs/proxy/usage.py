"""Token usage as the Anthropic and OpenAI APIs (Chat and Responses) report it, in one shape.

The proxy accounts tokens from what the upstream returns and the load
generator checks the same numbers from the client side; both read usage
through this module, so they cannot disagree on what a field means.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ccobs.proxy.json_fields import JsonFields
from ccobs.proxy.json_scan import loads
from ccobs.proxy.sse import ServerSentEvent
from ccobs.proxy.stop_reasons import (
    answer_stop_reason,
    anthropic_stop_reason,
    openai_finish_reason,
    responses_stop_reason,
)

Api = Literal["anthropic", "openai", "responses"]
"""Anthropic Messages, OpenAI Chat Completions, OpenAI Responses (``/v1/responses``)."""

_MAX_TOKEN_COUNT = 2**53
"""Counts above this are not believed: no request comes near it, and a larger
``int`` cannot be added to a float counter exactly (past ~1e308, not at all)."""


class UsageError(ValueError):
    """A usage object or stream event that does not have the documented shape."""


@dataclass(frozen=True)
class TokenCounts:
    """Tokens of one request by the four types ccobs counts.

    ``reasoning`` is how many of the ``output`` tokens were reasoning, as
    OpenAI's Responses API reports them (``output_tokens_details``). They are
    already inside ``output``, which is what they are billed as, so they are
    not a fifth type: :attr:`total` and :meth:`by_type` leave them out and the
    token metrics stay as they are. Kept for a later breakdown of the output.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_write + other.cache_write,
            self.reasoning + other.reasoning,
        )

    @property
    def total(self) -> int:
        """Every token billed; reasoning is counted once, inside output."""
        return self.input + self.output + self.cache_read + self.cache_write

    def by_type(self) -> dict[str, int]:
        """Counts keyed by the ``type`` label values of ``tokens_total``."""
        return {
            "input": self.input,
            "output": self.output,
            "cache_read": self.cache_read,
            "cache_write": self.cache_write,
        }


_new = object.__new__


def _token_counts(
    input: int, output: int, cache_read: int, cache_write: int, reasoning: int = 0
) -> TokenCounts:
    """``TokenCounts(...)`` for the parsers, without the frozen ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which
    costs more than reading the usage it holds; the fields go into the new
    instance's ``__dict__`` directly instead, so it is the same object
    (equal, hashed, printed and immutable as one built by its ``__init__``).
    """
    counts = _new(TokenCounts)
    counts.__dict__.update(
        input=input,
        output=output,
        cache_read=cache_read,
        cache_write=cache_write,
        reasoning=reasoning,
    )
    return counts


def _plain_counts(
    input: object, output: object, cache_read: object, cache_write: object
) -> TokenCounts | None:
    """The counts when each is a plain ``int`` in range; else None, for ``_count`` to judge."""
    if (
        type(input) is int
        and type(output) is int
        and type(cache_read) is int
        and type(cache_write) is int
        and 0 <= input <= _MAX_TOKEN_COUNT
        and 0 <= output <= _MAX_TOKEN_COUNT
        and 0 <= cache_read <= _MAX_TOKEN_COUNT
        and 0 <= cache_write <= _MAX_TOKEN_COUNT
    ):
        return _token_counts(input, output, cache_read, cache_write)
    return None


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TOKEN_COUNT:
        raise UsageError(f"usage field {key!r} is not a token count: {value!r}"[:200])
    return value


def anthropic_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """Anthropic ``usage``: input excludes cached tokens, which come separately."""
    if type(usage) is dict:
        # Parsed JSON: plain ints in range (or absent) are the counts as they are; any
        # other value (null, a bool, a float, out of range) takes _count's checks below.
        get = usage.get
        counts = _plain_counts(
            get("input_tokens", 0),
            get("output_tokens", 0),
            get("cache_read_input_tokens", 0),
            get("cache_creation_input_tokens", 0),
        )
        if counts is not None:
            return counts
    elif not isinstance(usage, Mapping):
        raise UsageError(f"usage is not an object: {usage!r}")
    return TokenCounts(
        input=_count(usage, "input_tokens"),
        output=_count(usage, "output_tokens"),
        cache_read=_count(usage, "cache_read_input_tokens"),
        cache_write=_count(usage, "cache_creation_input_tokens"),
    )


def openai_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """OpenAI ``usage``: ``prompt_tokens`` includes the cached ones, so they are split off."""
    if not isinstance(usage, Mapping):
        raise UsageError(f"usage is not an object: {usage!r}")
    details = usage.get("prompt_tokens_details") or {}
    if not isinstance(details, Mapping):
        raise UsageError(f"prompt_tokens_details is not an object: {details!r}")
    cached = _count(details, "cached_tokens")
    prompt = _count(usage, "prompt_tokens")
    return TokenCounts(
        input=max(prompt - cached, 0),
        output=_count(usage, "completion_tokens"),
        cache_read=min(cached, prompt),
    )


def _details(usage: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    details = usage.get(key) or {}
    if not isinstance(details, Mapping):
        raise UsageError(f"{key} is not an object: {details!r}"[:200])
    return details


def responses_tokens(usage: Mapping[str, Any]) -> TokenCounts:
    """OpenAI Responses ``usage``: cached tokens are inside ``input_tokens``, so they are
    split off; reasoning tokens are inside ``output_tokens`` and stay there (see
    :class:`TokenCounts`)."""
    if not isinstance(usage, Mapping):
        raise UsageError(f"usage is not an object: {usage!r}"[:200])
    cached = _count(_details(usage, "input_tokens_details"), "cached_tokens")
    reasoning = _count(_details(usage, "output_tokens_details"), "reasoning_tokens")
    prompt = _count(usage, "input_tokens")
    output = _count(usage, "output_tokens")
    return TokenCounts(
        input=max(prompt - cached, 0),
        output=output,
        cache_read=min(cached, prompt),
        reasoning=min(reasoning, output),
    )


def response_tokens(api: Api, body: bytes) -> TokenCounts:
    """Usage of a non-streaming response body (a Responses ``response`` object included)."""
    return response_usage(api, body)[0]


def response_usage(api: Api, body: bytes) -> tuple[TokenCounts, str | None]:
    """Usage and stop reason of a non-streaming response body, from one parse of it."""
    try:
        data = loads(body)
    except ValueError as exc:
        raise UsageError(f"response is not JSON: {exc}") from None
    except RecursionError:
        raise UsageError("response is not JSON: nested too deeply to read") from None
    return usage_of_answer(api, data)


def usage_of_answer(api: Api, data: object) -> tuple[TokenCounts, str | None]:
    """Usage and stop reason of a parsed answer: :func:`response_usage` after its parse."""
    if not isinstance(data, dict) or "usage" not in data:
        raise UsageError("response has no usage")
    stop_reason = answer_stop_reason(api, data)
    if api == "anthropic":
        return anthropic_tokens(data["usage"]), stop_reason
    if api == "openai":
        return openai_tokens(data["usage"]), stop_reason
    return responses_tokens(data["usage"]), stop_reason


_ANSWER_FIELDS: dict[str, tuple[tuple[str, Any], ...]] = {
    "anthropic": (("usage", Any), ("stop_reason", Any)),
    "openai": (("usage", Any), ("choices", Any)),
    "responses": (("usage", Any), ("status", Any), ("incomplete_details", Any), ("output", Any)),
}
"""The top-level fields :func:`usage_of_answer` reads of each API's answer."""


class AnswerUsage:
    """:func:`response_usage`, reading only the fields it needs where msgspec decides.

    An answer is mostly its content; only ``usage`` and the stop reason's
    fields are read, so they alone are built (:class:`~ccobs.proxy.json_fields.JsonFields`).
    Anything msgspec does not decide is parsed whole, as before.
    """

    def __init__(self, use_msgspec: bool = True) -> None:
        self._fields = {
            api: JsonFields(fields, use_msgspec) for api, fields in _ANSWER_FIELDS.items()
        }

    @property
    def accelerated(self) -> bool:
        """True when msgspec reads the answers it can."""
        return all(fields.accelerated for fields in self._fields.values())

    def __call__(self, api: Api, body: bytes) -> tuple[TokenCounts, str | None]:
        data = self._fields[api].read(body)
        if data is None:
            return response_usage(api, body)
        return usage_of_answer(api, data)


_ANTHROPIC_EVENTS_READ = frozenset(
    {"message_start", "content_block_delta", "message_delta", "message_stop", "error"}
)


_MESSAGE_STOP = '{"type":"message_stop"}'
"""``message_stop``'s data as Anthropic sends it: a dict of that type and nothing else."""

_COMPACT_DELTA = re.compile(
    r'\{"type":"content_block_delta","index":(?:0|[1-9][0-9]{0,17}),'
    r'"delta":\{"type":"[a-z_]{1,64}","[a-z_]{1,64}":'
    r'"(?:[^"\\\x00-\x1f]++|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*+"\}\}'
).fullmatch
"""``content_block_delta``'s data in Anthropic's compact shape, a valid JSON object the
parser reads into a dict of that type whatever the text holds (the same shape as
``quiet_events``' delta, on text): its type is all the accounting needs."""


_RESPONSES_EVENTS_READ = frozenset(
    {"response.completed", "response.failed", "response.incomplete", "error"}
)
"""The Responses events with something to account; ``*.delta`` events are read by name."""


class StreamUsage:
    """Follows one streamed response event by event.

    Anthropic reports input and cache tokens in ``message_start`` and the
    cumulative output count in ``message_delta``; OpenAI Chat sends one final
    chunk with ``usage`` when the request asked for it
    (``stream_options.include_usage``); OpenAI Responses sends the whole usage
    in its last event, ``response.completed``. ``first_token`` turns True on
    the first content delta, which is when time to first token is taken.

    On the Responses API that is the first ``response.*.delta`` event of any
    kind: text, refusal, reasoning (text or summary), function call arguments.
    Like Anthropic's ``content_block_delta`` (text, tool input, thinking), it
    marks the model starting to produce output; a Codex turn often opens with
    reasoning or a tool call and no text at all, and would otherwise have no
    first token, or one taken after all its reasoning. ``response.failed`` and
    ``error`` set :attr:`error` (the failure's ``code``, the error event's
    ``code``). ``response.incomplete`` ends the stream whole, as a length stop
    does on the other APIs, with its ``incomplete_details.reason``
    (``max_output_tokens``, ``content_filter``) in :attr:`stop_reason`. The
    usage a failed or incomplete response reports is kept: it was billed.
    """

    def __init__(self, api: Api) -> None:
        self.api = api
        self.tokens = TokenCounts()
        self.first_token = False
        self.complete = False
        self.usage_seen = False
        self.error: str | None = None
        """The error type of an ``error`` event in the stream, if one came."""
        self.stop_reason: str | None = None
        """Why the answer stopped, in the vendor's word (see ``ccobs.proxy.stop_reasons``):
        ``message_delta``'s ``stop_reason``, a chunk's ``finish_reason``, or the Responses
        stream's last event (``response.incomplete``'s reason)."""

    def feed(self, event: ServerSentEvent) -> bool:
        """Take one event; returns True when it carried the first generated token."""
        if self.api == "anthropic":
            return self._anthropic(event)
        if self.api == "openai":
            return self._openai(event)
        return self._responses(event)

    def _json(self, event: ServerSentEvent) -> dict[str, Any]:
        try:
            data = event.json()
        except (ValueError, RecursionError):
            raise UsageError(f"stream event data is not JSON: {event.data[:80]!r}") from None
        if not isinstance(data, dict):
            raise UsageError(f"stream event data is not an object: {event.data[:80]!r}")
        return data

    def _anthropic(self, event: ServerSentEvent) -> bool:
        name = event.event
        if name is not None:
            if name not in _ANTHROPIC_EVENTS_READ:
                # ping, content_block_start/stop, and event types added after this was
                # written: nothing to account, so their data is not even parsed.
                return False
            # The canonical forms of the two events that need nothing but their type,
            # recognised on their text: the parse below would find that type and no more.
            if name == "content_block_delta" and _COMPACT_DELTA(event.data) is not None:
                return self._first()
            if name == "message_stop" and event.data == _MESSAGE_STOP:
                self.complete = True
                return False
        data = self._json(event)
        kind = data.get("type")
        if kind == "message_start":
            message = data.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if usage is not None:
                self.tokens = anthropic_tokens(usage)
                self.usage_seen = True
        elif kind == "content_block_delta":
            return self._first()
        elif kind == "message_delta":
            delta = data.get("delta")
            if isinstance(delta, dict):
                self.stop_reason = anthropic_stop_reason(delta) or self.stop_reason
            usage = data.get("usage")
            if isinstance(usage, dict):
                # Cumulative counts: each message_delta replaces what came before. A null
                # field (or an absent one) means "not reported here" (as the SDKs read it),
                # not zero.
                tokens = self.tokens
                get = usage.get
                input_ = get("input_tokens")
                output = get("output_tokens")
                cache_read = get("cache_read_input_tokens")
                cache_write = get("cache_creation_input_tokens")
                merged = (
                    tokens.input if input_ is None else input_,
                    tokens.output if output is None else output,
                    tokens.cache_read if cache_read is None else cache_read,
                    tokens.cache_write if cache_write is None else cache_write,
                )
                self.tokens = _plain_counts(*merged) or anthropic_tokens(
                    dict(zip(_ANTHROPIC_KEYS, merged, strict=True))
                )
                self.usage_seen = True
        elif kind == "message_stop":
            self.complete = True
        elif kind == "error":
            error = data.get("error")
            self.error = str(error.get("type", "error")) if isinstance(error, dict) else "error"
        return False

    def _openai(self, event: ServerSentEvent) -> bool:
        if event.data == "[DONE]":
            self.complete = True
            return False
        data = self._json(event)
        if "error" in data:
            error = data["error"]
            self.error = str(error.get("type", "error")) if isinstance(error, dict) else "error"
            return False
        if data.get("usage"):
            self.tokens = openai_tokens(data["usage"])
            self.usage_seen = True
        choices = data.get("choices") or []
        if not isinstance(choices, list):
            raise UsageError(f"choices is not a list: {choices!r}"[:120])
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason") is not None:
                self.stop_reason = openai_finish_reason(choices) or self.stop_reason
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise UsageError(f"choice delta is not an object: {delta!r}"[:120])
            if delta.get("content"):
                return self._first()
        return False

    def _responses(self, event: ServerSentEvent) -> bool:
        name = event.event
        if name is not None:
            # OpenAI names every event: deltas (most of the stream) are never parsed.
            if name.endswith(".delta"):
                return self._first()
            if name not in _RESPONSES_EVENTS_READ:
                return False
        data = self._json(event)
        kind = data.get("type")
        if not isinstance(kind, str):
            # An untyped {"error": {...}}, as on Chat streams: the openai SDK raises on it
            # whatever the API, and the demo proxy appends one when the upstream breaks off.
            if data.get("error"):
                self.error = _error_code(None, data["error"])
            return False
        if kind.endswith(".delta"):
            return self._first()
        if kind == "error":
            self.error = _error_code(data.get("code"), data.get("error"))
        elif kind in _RESPONSES_EVENTS_READ:
            response = data.get("response")
            if not isinstance(response, dict):
                raise UsageError(f"{kind} event has no response object")
            if response.get("usage") is not None:
                self.tokens = responses_tokens(response["usage"])
                self.usage_seen = True
            if kind == "response.completed":
                self.complete = True
                self.stop_reason = responses_stop_reason(response)
            elif kind == "response.failed":
                self.error = _error_code(None, response.get("error"))
            else:  # cut short by a limit or a filter: a whole answer, like a length stop
                self.complete = True
                details = response.get("incomplete_details")
                reason = details.get("reason") if isinstance(details, dict) else None
                self.stop_reason = reason if isinstance(reason, str) and reason else "incomplete"
        return False

    def _first(self) -> bool:
        if self.first_token:
            return False
        self.first_token = True
        return True


def _error_code(code: object, error: object) -> str:
    """An OpenAI error's ``code`` (or ``type``), from the event or its nested ``error``."""
    if isinstance(code, str) and code:
        return code
    if isinstance(error, dict):
        for key in ("code", "type"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return value
    return "error"


_ANTHROPIC_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
