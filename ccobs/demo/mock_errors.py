"""The mock upstream's request validation and error answers, in each API's own shape.

The official SDKs parse these: the error bodies, types and codes follow what
Anthropic and OpenAI send, so a client sees an injected fault as it would a real one.
OpenAI's Chat Completions and Responses APIs share one error body shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ccobs.demo.decisions import Api, Fault

_MAX_BODY_DEPTH = 64
"""Deeper request bodies are refused: the mock walks bodies recursively to count tokens."""
_ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    404: ("invalid_request_error", "unknown_url"),
    405: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "overloaded"),
    504: ("timeout", None),
    529: ("server_error", "overloaded"),
}
FAULT_MESSAGES: Mapping[int, str] = {
    400: "Invalid request (injected by the ccobs mock upstream).",
    429: "Rate limit exceeded (injected by the ccobs mock upstream).",
    500: "Internal server error (injected by the ccobs mock upstream).",
    503: "The server is overloaded (injected by the ccobs mock upstream).",
    504: "Request timed out (injected by the ccobs mock upstream).",
    529: "Overloaded (injected by the ccobs mock upstream).",
}


_FAULT_STATUSES: Mapping[Fault, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "invalid_request": 400,
    "timeout": 504,
}


def fault_status(fault: Fault | None, api: Api) -> int:
    """The status a fault answers with (a timeout's 504 only if the client still waits)."""
    if fault is None or fault == "drop":
        return 200
    if fault == "overloaded":
        return 529 if api == "anthropic" else 503
    return _FAULT_STATUSES[fault]


def error_response(
    api: Api, status: int, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error body in the vendor's shape, so SDKs raise their matching error class."""
    body: dict[str, Any]
    if api == "anthropic":
        error_type = _ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        if headers and "request-id" in headers:
            body["request_id"] = headers["request-id"]
    else:
        error_type, code = _OPENAI_ERROR_TYPES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None)
        )
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _positive_int(body: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValueError(f"{name}: Field required")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: Input should be an integer >= 1")
    return value


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; ValueError (answered with a 400) otherwise."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("Request body is not valid JSON.") from exc
    except RecursionError:
        raise ValueError("Request body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ValueError("Request body must be a JSON object.")
    if _depth_exceeds(body, _MAX_BODY_DEPTH):
        raise ValueError(f"Request body is nested deeper than {_MAX_BODY_DEPTH} levels.")
    return body


def _depth_exceeds(value: object, limit: int) -> bool:
    """True when containers nest deeper than ``limit``; iterative, so any depth is safe."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[object]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def model_and_messages(body: Mapping[str, Any]) -> str:
    """Check the fields Messages and Chat Completions require; return the model."""
    model = _model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages: Field required (a non-empty list)")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise ValueError("messages: each message must be an object with a role")
    return model


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("model: Field required")
    if not model.isprintable():
        # The model is echoed in every answer: a lone surrogate could not even be encoded.
        raise ValueError("model: Input should be a printable string")
    return model


def _stream(body: Mapping[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValueError("stream: Input should be a valid boolean")
    return stream


def validate_responses(body: Mapping[str, Any]) -> tuple[str, bool, int | None]:
    """Check a Responses API request: (model, stream, max_output_tokens).

    ``input`` is a string or a list of items (messages, function call outputs,
    ...); it may be absent, as the API allows. ``tools`` and every other field
    are accepted and ignored: the mock never calls a tool.
    """
    model = _model(body)
    stream = _stream(body)
    prompt = body.get("input")
    items = isinstance(prompt, list) and all(isinstance(item, dict) for item in prompt)
    if not (prompt is None or isinstance(prompt, str) or items):
        raise ValueError("input: Input should be a string or a list of items")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str | list):
        raise ValueError("instructions: Input should be a string")
    if body.get("stream_options") is not None and not stream:
        raise ValueError("The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    return model, stream, _positive_int(body, "max_output_tokens", required=False)


def validate(api: Api, body: Mapping[str, Any]) -> tuple[str, bool, int | None, bool]:
    """Check the fields the mock relies on: (model, stream, max_tokens, include_usage).

    On the Responses API ``max_tokens`` is ``max_output_tokens``, and the usage
    always comes (in ``response.completed``), so ``include_usage`` is True.
    """
    if api == "responses":
        model, stream, max_tokens = validate_responses(body)
        return model, stream, max_tokens, True
    model = model_and_messages(body)
    stream = _stream(body)
    include_usage = False
    if api == "anthropic":
        max_tokens = _positive_int(body, "max_tokens", required=True)
    else:
        max_tokens = _positive_int(body, "max_completion_tokens", required=False)
        if max_tokens is None:
            max_tokens = _positive_int(body, "max_tokens", required=False)
        options = body.get("stream_options")
        if options is not None:
            if not stream:
                raise ValueError(
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled."
                )
            if not isinstance(options, dict):
                raise ValueError("stream_options: Input should be an object")
            include_usage = options.get("include_usage") is True
    return model, stream, max_tokens, include_usage


# --------------------------------------------------------------------------- app
