"""The mock upstream's model list: ``GET /v1/models`` and ``GET /v1/models/{model_id}``.

Clients discover models before they ask one (Claude Code with
``CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1`` sends ``GET /v1/models?limit=1000``;
SDKs' ``models.list()``), so the mock lists the models ccobs has prices for,
in Anthropic's shape for a request that carries ``anthropic-version`` and in
OpenAI's otherwise.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from ccobs.demo.mock_errors import error_response
from ccobs.pricing import PriceTable

_CREATED = 1_767_225_600
"""2026-01-01T00:00:00Z: every listed model's creation time, so answers are repeatable."""


def models_response(request: Request, model_id: str | None = None) -> Response:
    """The model list, or one model; a 404 in the API's shape for an unknown one."""
    anthropic = "anthropic-version" in request.headers
    models = [m for m in PriceTable.default().models if anthropic == m.startswith("claude")]
    if model_id is not None:
        if model_id not in models:
            message = f"model: {model_id} not found"
            return error_response("anthropic" if anthropic else "openai", 404, message)
        return JSONResponse(_anthropic_model(model_id) if anthropic else _openai_model(model_id))
    if anthropic:
        return JSONResponse(
            {
                "data": [_anthropic_model(m) for m in models],
                "has_more": False,
                "first_id": models[0] if models else None,
                "last_id": models[-1] if models else None,
            }
        )
    return JSONResponse({"object": "list", "data": [_openai_model(m) for m in models]})


def _anthropic_model(model: str) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2026-01-01T00:00:00Z",
    }


def _openai_model(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": "ccobs-mock"}
