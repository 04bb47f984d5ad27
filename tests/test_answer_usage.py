"""An answer's usage read from its few fields (``AnswerUsage``) is ``response_usage``'s.

msgspec builds only the fields the usage and stop reason come from; every
answer it does not decide is parsed whole. Either way the tokens, the stop
reason and any ``UsageError`` (its message included) must be the same.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ccobs.proxy.usage import AnswerUsage, Api, UsageError, response_usage

READ = AnswerUsage()

COUNTS = st.one_of(
    st.integers(min_value=0, max_value=10**6),
    st.none(),
    st.sampled_from([-1, 2**53 + 1, 10**30, 1.5, True, "7", [1]]),
)
TEXT = st.text(max_size=20)
STOPS = st.one_of(st.sampled_from(["end_turn", "length", "stop", "tool_use", ""]), st.none(), TEXT)


@st.composite
def usage(draw: st.DrawFn, api: Api) -> object:
    keys = {
        "anthropic": [
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        ],
        "openai": ["prompt_tokens", "completion_tokens", "prompt_tokens_details"],
        "responses": [
            "input_tokens",
            "output_tokens",
            "input_tokens_details",
            "output_tokens_details",
        ],
    }[api]
    found: dict[str, Any] = {}
    for key in draw(st.lists(st.sampled_from(keys), max_size=4)):
        if key.endswith("_details"):
            found[key] = draw(
                st.dictionaries(st.sampled_from(["cached_tokens", "reasoning_tokens"]), COUNTS)
                | COUNTS
            )
        else:
            found[key] = draw(COUNTS)
    return draw(st.just(found) | st.sampled_from([None, [], "usage"]))


@st.composite
def answers(draw: st.DrawFn) -> tuple[Api, bytes]:
    api: Api = draw(st.sampled_from(["anthropic", "openai", "responses"]))
    answer: dict[str, Any] = {"id": draw(TEXT), "content": [{"type": "text", "text": draw(TEXT)}]}
    if draw(st.booleans()):
        answer["usage"] = draw(usage(api))
    if api == "anthropic":
        answer["stop_reason"] = draw(STOPS)
    elif api == "openai":
        answer["choices"] = draw(
            st.lists(st.fixed_dictionaries({"finish_reason": STOPS}), max_size=2) | STOPS
        )
    else:
        answer["status"] = draw(st.sampled_from(["completed", "incomplete", "failed", None]))
        answer["incomplete_details"] = draw(st.none() | st.fixed_dictionaries({"reason": STOPS}))
        answer["output"] = draw(
            st.lists(st.fixed_dictionaries({"type": st.sampled_from(["message", "function_call"])}))
        )
    body = bytearray(json.dumps(answer, ensure_ascii=draw(st.booleans())).encode())
    quotes = [i + 1 for i, byte in enumerate(body) if byte == ord('"')]
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(body)) | st.sampled_from(quotes))
        body.insert(at, draw(st.sampled_from(b'{}[]",:\\ 0\xff\xc3')))
    return api, bytes(body)


def _outcome(read: Any, api: Api, body: bytes) -> object:
    try:
        return ("value", read(api, body))
    except UsageError as exc:
        return ("error", str(exc))


def test_msgspec_reads_answers_where_it_is_installed() -> None:
    assert READ.accelerated, "msgspec is missing: pip install -e '.[server]' (make install)"


@settings(max_examples=1500, deadline=None)
@given(answers())
def test_any_answer_reads_as_response_usage_reads_it(answer: tuple[Api, bytes]) -> None:
    api, body = answer
    assert _outcome(READ, api, body) == _outcome(response_usage, api, body)


def test_without_msgspec_every_answer_is_parsed_whole() -> None:
    plain = AnswerUsage(use_msgspec=False)
    body = b'{"usage":{"input_tokens":3,"output_tokens":4},"stop_reason":"end_turn"}'
    assert plain("anthropic", body) == response_usage("anthropic", body)
    assert not plain.accelerated
