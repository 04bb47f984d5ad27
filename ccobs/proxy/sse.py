"""Server-sent events: the wire format both LLM APIs stream in.

Kept separate so the mock upstream (which writes events), the proxy
(which reads along while relaying raw bytes) and the load generator (which
reads decoded lines) agree on framing byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from ccobs.proxy.json_scan import loads

__all__ = ["SSEDecoder", "ServerSentEvent", "encode_event", "iter_events"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its ``event:`` name (None when absent) and joined ``data:``."""

    event: str | None
    data: str

    def json(self) -> Any:
        """The data field parsed as JSON (``json.loads``'s value and errors)."""
        return loads(self.data)


_new = object.__new__


def _event(name: str | None, data: str) -> ServerSentEvent:
    """``ServerSentEvent(name, data)`` for the decoder, without the frozen ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``, which
    costs more than finding the event in the bytes; the fields go into the
    new instance's ``__dict__`` directly instead, so it is the same object
    (equal, hashed, printed and immutable as one built by its ``__init__``).
    """
    event = _new(ServerSentEvent)
    event.__dict__.update(event=name, data=data)
    return event


def encode_event(data: object, event: str | None = None) -> bytes:
    """Frame one event. ``data`` that is not a ``str`` is sent as compact JSON.

    Anthropic names every event (``event: message_start``); OpenAI sends bare
    ``data:`` lines, so ``event`` is optional.
    """
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    lines = "".join(f"data: {line}\n" for line in payload.split("\n"))
    return f"{head}{lines}\n".encode()


class _EventBuilder:
    """The WHATWG field rules for one line at a time.

    A blank line ends an event, ``:`` lines are comments, several ``data:``
    lines join with newlines, and an event without data is not dispatched.
    """

    def __init__(self) -> None:
        self._event: str | None = None
        self._data: list[str] = []

    @property
    def idle(self) -> bool:
        """No event is being built: the stream is between events."""
        return self._event is None and not self._data

    def line(self, line: str) -> ServerSentEvent | None:
        if not line:
            event = (
                ServerSentEvent(event=self._event, data="\n".join(self._data))
                if self._data
                else None
            )
            self._event, self._data = None, []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None


class SSEDecoder:
    """Incremental decoder for raw bytes as they come off the socket.

    A proxy relays bytes untouched and only reads along, so it needs events
    out of arbitrary chunks: lines and UTF-8 characters may be split anywhere.
    An event still open when the stream ends is never returned, as the spec
    requires, so a truncated response cannot pass for a complete final event.
    :attr:`open_bytes` tells a relay how much of what it was fed belongs to
    that open event, so it can forward whole events only.
    """

    def __init__(self) -> None:
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._open_lines = 0
        self._builder = _EventBuilder()

    @property
    def open_bytes(self) -> int:
        """How many of the last bytes fed belong to an event not finished yet.

        Zero between events: after a blank line, or a comment (a keep-alive
        ``: ping``) outside any event.
        """
        return self._open_lines + self._pending_size

    def feed(
        self, chunk: bytes, skip: Callable[[bytes, int], re.Match[bytes] | None] | None = None
    ) -> list[ServerSentEvent]:
        """Consume ``chunk``; return the events it completed, in order.

        ``skip(chunk, pos)``: matches one whole event at ``pos`` that the caller
        needs nothing from (``ccobs.proxy.quiet_events``); such events are consumed
        without being decoded or returned where the chunk is whole events in the
        APIs' framing. Elsewhere every event is returned, as without it.
        """
        pending = self._pending
        if (
            not pending
            and not self._open_lines
            and chunk[-2:] == b"\n\n"
            and b"\r" not in chunk
            and self._builder.idle
        ):
            # Between events, and the chunk is whole events: as the APIs send them, each
            # an optional ``event: name`` line and one ``data: value`` line, they are read
            # by finding their line ends (the field rules give the same result; a regular
            # expression would take a step per byte). Anything else (comments, several data
            # lines, no space after the colon) is left to the line rules below, from the
            # same state.
            events: list[ServerSentEvent] = []
            find, starts = chunk.find, chunk.startswith
            pos, end = 0, len(chunk)
            while pos < end:
                if skip is not None and (quiet := skip(chunk, pos)) is not None:
                    pos = quiet.end()
                    continue
                # The chunk ends with a line end, so every find below finds one.
                if starts(b"event: ", pos):
                    line_end = find(b"\n", pos)
                    name: str | None = chunk[pos + 7 : line_end].decode("utf-8", "replace")
                    pos = line_end + 1
                else:
                    name = None
                if not starts(b"data: ", pos):
                    break
                line_end = find(b"\n", pos)
                if not starts(b"\n", line_end + 1):  # one data line, then a blank line
                    break
                events.append(_event(name, chunk[pos + 6 : line_end].decode("utf-8", "replace")))
                pos = line_end + 2
            if pos == end:
                return events
        if (
            b"\n" not in chunk
            and b"\r" not in chunk
            and not (pending and pending[-1][-1:] == b"\r")
        ):
            # Still inside one line: keep the piece, join once the line ends. Joining on
            # every chunk would copy a long line again per chunk, quadratic in its length.
            if chunk:
                pending.append(chunk)
                self._pending_size += len(chunk)
            return []
        pending.append(chunk)
        lines = b"".join(pending).splitlines(keepends=True)
        # An unterminated tail waits for more bytes; so does a tail ending in "\r",
        # whose "\n" may be the first byte of the next chunk.
        tail = lines.pop() if lines and not lines[-1].endswith(b"\n") else b""
        self._pending = [tail] if tail else []
        self._pending_size = len(tail)
        # _EventBuilder.line's rules inline, on bytes: the proxy reads every line of every
        # event it relays, and a call plus a decode of the field name per line cost more
        # than the rest. Only a field's value is decoded; its ASCII name cannot end inside
        # a UTF-8 character, so the text is the same as decoding the whole line.
        events = []
        builder = self._builder
        name, data = builder._event, builder._data
        open_lines = self._open_lines
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line:  # the end of an event: dispatched if it has data
                if data:
                    events.append(_event(name, "\n".join(data)))
                name, data = None, []
                open_lines = 0
                continue
            if line[:5] == b"data:":
                value = line[5:]
                data.append((value[1:] if value[:1] == b" " else value).decode("utf-8", "replace"))
            elif line[:6] == b"event:":
                value = line[6:]
                name = (value[1:] if value[:1] == b" " else value).decode("utf-8", "replace")
            elif line == b"data":  # a field without a colon has an empty value
                data.append("")
            elif line == b"event":
                name = ""
            # Anything else is a comment (":") or a field the APIs do not use (id, retry).
            open_lines = 0 if name is None and not data else open_lines + len(raw)
        builder._event, builder._data = name, data
        self._open_lines = open_lines
        return events


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    """Parse decoded text lines (e.g. ``httpx.Response.aiter_lines()``) into events."""
    builder = _EventBuilder()
    async for raw in lines:
        event = builder.line(raw.rstrip("\r\n"))
        if event is not None:
            yield event
    # An event cut off by end of stream is discarded (see SSEDecoder).
