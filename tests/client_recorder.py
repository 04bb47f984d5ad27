"""A loopback upstream that records what a real client sends, and answers just enough.

Used to characterise Claude Code and Codex CLI (what they request, with which
headers and body, in which order) independently of ccobs: the proxy and the
mock upstream can then be checked against a record of the clients themselves,
and a client upgrade that changes its traffic shows up as a diff of records.

It answers every endpoint these clients are known to call (``HEAD``/``GET /``,
Anthropic ``/v1/messages`` plain and streamed, ``/v1/messages/count_tokens``,
``/v1/models``, OpenAI ``/v1/responses`` streamed) with the smallest answer a
client accepts, and anything else with a 404 that is recorded like the rest.
Credentials are recorded as header names only, never values.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from asgi_server import RunningServer, serve_asgi
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

__all__ = [
    "ANSWER_TEXT",
    "RecordedRequest",
    "Recorder",
    "recording_upstream",
]

ANSWER_TEXT = "Hello from the recorder."

# Headers whose values are recorded: they identify the client and its protocol.
# Everything else (credentials above all) is recorded by name only.
_VALUE_HEADERS = frozenset(
    {
        "user-agent",
        "x-app",
        "anthropic-beta",
        "anthropic-version",
        "anthropic-dangerous-direct-browser-access",
        "x-claude-code-session-id",
        "session_id",
        "session-id",
        "x-session-id",
        "conversation_id",
        "originator",
        "version",
        "openai-beta",
        "accept",
        "content-type",
        "content-encoding",
        "x-client-request-id",
        "x-codex-beta-features",
        "x-codex-turn-metadata",
        "x-openai-subagent",
    }
)
_VALUE_PREFIXES = ("x-stainless-", "x-codex-", "x-openai-")


def _recorded_value(name: str) -> bool:
    return name in _VALUE_HEADERS or name.startswith(_VALUE_PREFIXES)


@dataclass
class RecordedRequest:
    """One request as the recorder saw it: no credential values, the body kept whole."""

    method: str
    path: str
    query: str
    header_names: list[str]
    header_values: dict[str, str]
    body: Any
    status: int = 0

    @property
    def target(self) -> str:
        """``METHOD /path?query``, the way the characterisation lists requests."""
        return f"{self.method} {self.path}" + (f"?{self.query}" if self.query else "")


@dataclass
class Recorder:
    """The requests received so far, in arrival order; safe to read from the test thread."""

    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self.requests)


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _anthropic_message(model: str) -> dict[str, Any]:
    return {
        "id": "msg_recorder",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": ANSWER_TEXT}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 6,
        },
    }


async def _anthropic_events(model: str) -> AsyncIterator[bytes]:
    start = _anthropic_message(model)
    start.update(content=[], stop_reason=None)
    start["usage"]["output_tokens"] = 1
    yield _sse("message_start", {"type": "message_start", "message": start})
    yield _sse(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )
    yield _sse(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": ANSWER_TEXT},
        },
    )
    yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
    yield _sse(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 6},
        },
    )
    yield _sse("message_stop", {"type": "message_stop"})


def _responses_events(model: str) -> Iterator[bytes]:
    """OpenAI Responses API stream: typed events ending in ``response.completed``."""
    created = int(time.time())
    base: dict[str, Any] = {
        "id": "resp_recorder",
        "object": "response",
        "created_at": created,
        "model": model,
        "status": "in_progress",
        "output": [],
        "usage": None,
    }
    item_id = "msg_recorder"
    part = {"type": "output_text", "text": ANSWER_TEXT, "annotations": []}
    item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    events: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": base}),
        ("response.in_progress", {"response": base}),
        (
            "response.output_item.added",
            {"output_index": 0, "item": {**item, "status": "in_progress", "content": []}},
        ),
        (
            "response.content_part.added",
            {
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "part": {**part, "text": ""},
            },
        ),
        (
            "response.output_text.delta",
            {"item_id": item_id, "output_index": 0, "content_index": 0, "delta": ANSWER_TEXT},
        ),
        (
            "response.output_text.done",
            {"item_id": item_id, "output_index": 0, "content_index": 0, "text": ANSWER_TEXT},
        ),
        (
            "response.content_part.done",
            {"item_id": item_id, "output_index": 0, "content_index": 0, "part": part},
        ),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        (
            "response.completed",
            {
                "response": {
                    **base,
                    "status": "completed",
                    "output": [item],
                    "usage": {
                        "input_tokens": 20,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": 6,
                        "output_tokens_details": {"reasoning_tokens": 0},
                        "total_tokens": 26,
                    },
                }
            },
        ),
    ]
    for number, (event, data) in enumerate(events):
        yield _sse(event, {"type": event, "sequence_number": number, **data})


def _app(recorder: Recorder) -> Starlette:
    async def endpoint(request: Request) -> Response:
        raw = await request.body()
        body: Any
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = f"<{len(raw)} bytes, not JSON>"
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            header_names=[name for name, _ in request.headers.items()],
            header_values={k: v for k, v in request.headers.items() if _recorded_value(k)},
            body=body,
        )
        response = _answer(request.method, request.url.path, body)
        record.status = response.status_code
        recorder.add(record)
        return response

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


def _answer(method: str, path: str, body: Any) -> Response:
    fields = body if isinstance(body, dict) else {}
    model = str(fields.get("model", "unknown-model"))
    streamed = bool(fields.get("stream"))
    if path == "/" and method in ("GET", "HEAD"):
        return Response(status_code=200)
    if path == "/v1/messages" and method == "POST":
        if streamed:
            return StreamingResponse(_anthropic_events(model), media_type="text/event-stream")
        return JSONResponse(_anthropic_message(model))
    if path == "/v1/messages/count_tokens" and method == "POST":
        return JSONResponse({"input_tokens": 12})
    if path == "/v1/models" and method == "GET":
        return JSONResponse({"data": [], "has_more": False, "first_id": None, "last_id": None})
    if path.endswith("/responses") and method == "POST":
        return StreamingResponse(_responses_events(model), media_type="text/event-stream")
    return JSONResponse({"error": {"type": "not_found_error", "message": path}}, status_code=404)


@contextmanager
def recording_upstream() -> Iterator[tuple[RunningServer, Recorder]]:
    """Serve the recorder on a free loopback port for the ``with`` block."""
    recorder = Recorder()
    with serve_asgi(_app(recorder)) as server:
        yield server, recorder
