"""The mock upstream's per-key windows: they count down, reset, refuse with 429, and say so."""

from __future__ import annotations

import pytest

from ccobs.demo.mock_rate_limits import MockRateLimitConfig, MockRateLimits

KEY = {"x-api-key": "sk-ant-api03-test"}
SUBSCRIPTION = {"authorization": "Bearer sk-ant-oat01-test"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, **config: object) -> MockRateLimits:
    return MockRateLimits(MockRateLimitConfig(**config), clock=clock)  # type: ignore[arg-type]


def charge(
    mock: MockRateLimits,
    api: str = "anthropic",
    request: dict[str, str] = KEY,
    tokens: tuple[int, int] = (10, 5),
    status: int = 200,
) -> tuple[int | None, dict[str, str]]:
    headers: dict[str, str] = {}
    retry_after = mock.charge(api, request, tokens[0], tokens[1], status, headers)
    return retry_after, headers


def test_each_answered_request_counts_down_the_requests_and_token_windows() -> None:
    mock = limits(Clock(), requests=10, input_tokens=100, output_tokens=50)

    charge(mock)
    _, headers = charge(mock)

    assert headers["anthropic-ratelimit-requests-remaining"] == "8"
    assert headers["anthropic-ratelimit-input-tokens-remaining"] == "80"
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "40"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "120"
    assert headers["anthropic-ratelimit-tokens-limit"] == "150"


def test_a_spent_window_answers_429_with_the_seconds_until_it_resets() -> None:
    clock = Clock()
    mock = limits(clock, requests=2, window_seconds=60.0)
    charge(mock)
    charge(mock)
    clock.now += 20.5

    retry_after, headers = charge(mock)

    assert retry_after == 40
    assert headers["retry-after"] == "40"
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_the_window_resets_once_its_time_is_over() -> None:
    clock = Clock()
    mock = limits(clock, requests=2, window_seconds=60.0)
    charge(mock)
    charge(mock)
    clock.now += 60.0

    retry_after, headers = charge(mock)

    assert retry_after is None
    assert headers["anthropic-ratelimit-requests-remaining"] == "1"


def test_keys_have_windows_of_their_own() -> None:
    mock = limits(Clock(), requests=1)
    charge(mock)

    retry_after, _ = charge(mock, request={"x-api-key": "another"})

    assert retry_after is None


def test_openai_answers_state_requests_and_tokens_with_go_duration_resets() -> None:
    clock = Clock()
    mock = limits(clock, requests=5, input_tokens=100, output_tokens=100, window_seconds=360.0)

    _, headers = charge(mock, api="openai", tokens=(30, 20))

    assert headers == {
        "x-ratelimit-limit-requests": "5",
        "x-ratelimit-remaining-requests": "4",
        "x-ratelimit-reset-requests": "6m0s",
        "x-ratelimit-limit-tokens": "200",
        "x-ratelimit-remaining-tokens": "150",
        "x-ratelimit-reset-tokens": "6m0s",
    }


def test_requests_the_mock_fails_on_its_own_are_not_charged() -> None:
    mock = limits(Clock(), requests=3)

    charge(mock, status=500)
    _, headers = charge(mock, status=500)

    assert headers["anthropic-ratelimit-requests-remaining"] == "3"


def test_an_injected_429_reads_as_a_spent_requests_window() -> None:
    _, headers = charge(limits(Clock()), status=429)

    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_the_requests_limit_header_sets_the_keys_limit() -> None:
    mock = limits(Clock())

    _, headers = charge(mock, request={**KEY, "x-mock-ratelimit-requests": "3"})

    assert headers["anthropic-ratelimit-requests-limit"] == "3"
    assert headers["anthropic-ratelimit-requests-remaining"] == "2"


def test_a_subscription_token_is_charged_to_the_5h_and_7d_windows_with_unified_headers() -> None:
    clock = Clock()
    mock = limits(clock, subscription_5h_tokens=100, subscription_7d_tokens=1000)

    _, headers = charge(mock, request=SUBSCRIPTION, tokens=(30, 20))

    assert headers == {
        "anthropic-ratelimit-unified-status": "allowed",
        "anthropic-ratelimit-unified-5h-utilization": "0.500000",
        "anthropic-ratelimit-unified-5h-reset": str(int(clock.now) + 5 * 3600),
        "anthropic-ratelimit-unified-7d-utilization": "0.050000",
        "anthropic-ratelimit-unified-7d-reset": str(int(clock.now) + 7 * 86400),
    }


@pytest.mark.parametrize(
    ("requests", "status", "retry_after"),
    [(1, "allowed", None), (2, "allowed_warning", None), (3, "rejected", 18000)],
)
def test_the_subscription_status_warns_then_rejects_as_the_window_fills(
    requests: int, status: str, retry_after: int | None
) -> None:
    mock = limits(Clock(), subscription_5h_tokens=100, warning_utilization=0.8)

    for _ in range(requests):
        answer, headers = charge(mock, request=SUBSCRIPTION, tokens=(40, 10))

    assert headers["anthropic-ratelimit-unified-status"] == status
    assert answer == retry_after


def test_subscription_windows_are_only_for_the_messages_api() -> None:
    _, headers = charge(limits(Clock()), api="openai", request=SUBSCRIPTION)

    assert "x-ratelimit-remaining-requests" in headers


def test_the_keys_remembered_are_bounded() -> None:
    mock = limits(Clock(), max_keys=3)

    for i in range(10):
        charge(mock, request={"x-api-key": f"k{i}"})

    assert len(mock._keys) == 3


def test_rate_limit_headers_already_there_are_replaced() -> None:
    headers = {"x-ratelimit-remaining-requests": "3999", "request-id": "req_1"}

    limits(Clock()).charge("anthropic", KEY, 1, 1, 200, headers)

    assert "x-ratelimit-remaining-requests" not in headers
    assert headers["request-id"] == "req_1"
