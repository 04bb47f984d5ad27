"""Why an answer stopped, read from each API's answer in the vendor's own word.

Anthropic puts ``stop_reason`` on the message (streamed: in ``message_delta``),
OpenAI Chat a ``finish_reason`` on each choice. The Responses API has none:
an ``incomplete`` response names what cut it off in
``incomplete_details.reason`` (``max_output_tokens``, ``content_filter``),
and a completed one is read as Chat would say it: ``tool_calls`` when its
output calls a tool, else ``stop``. The value goes on the access-log line as
read (bounded in length); the metric's label is bounded separately
(:func:`ccobs.answer_signals.stop_reason_label`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_STOP_REASON_CHARS = 64
"""Longer values are cut: a stop reason is a short word, never a place for free text."""

_TOOL_CALL_ITEMS = frozenset(
    {"function_call", "custom_tool_call", "local_shell_call", "computer_call", "mcp_call"}
)
"""Responses output items that call a tool: the answer stops for the tool's result."""


def _word(value: object) -> str | None:
    """``value`` when it is a non-empty string, cut to :data:`MAX_STOP_REASON_CHARS`."""
    if isinstance(value, str) and value:
        return value[:MAX_STOP_REASON_CHARS]
    return None


def anthropic_stop_reason(message: Mapping[str, Any]) -> str | None:
    """A message's (or a ``message_delta``'s ``delta``'s) ``stop_reason``."""
    return _word(message.get("stop_reason"))


def openai_finish_reason(choices: object) -> str | None:
    """The first ``finish_reason`` among a completion's (or a chunk's) choices."""
    if not isinstance(choices, list):
        return None
    for choice in choices:
        if isinstance(choice, dict):
            reason = _word(choice.get("finish_reason"))
            if reason is not None:
                return reason
    return None


def responses_stop_reason(response: Mapping[str, Any]) -> str | None:
    """A finished ``response`` object's stop reason, as the module docstring says; else None."""
    status = response.get("status")
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _word(reason) or "incomplete"
    if status != "completed":
        return None
    output = response.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict) and item.get("type") in _TOOL_CALL_ITEMS:
                return "tool_calls"
    return "stop"


def answer_stop_reason(api: str, data: Mapping[str, Any]) -> str | None:
    """The stop reason of a whole (non-streamed) answer of ``api``, or None when it has none."""
    if api == "anthropic":
        return anthropic_stop_reason(data)
    if api == "openai":
        return openai_finish_reason(data.get("choices"))
    return responses_stop_reason(data)
