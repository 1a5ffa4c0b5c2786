"""Which API answers are asked again, and after how long: the policy `kube.retry` gives the one retry loop."""

import threading

import pytest

from reconciler.kube.retry import retry_after, retryable
from reconciler.retrying import RetryPolicy, retry_call


class Answer(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.headers = status, headers or {}


def _waits(answers: list[Answer], policy: RetryPolicy) -> tuple[list[float], BaseException | None]:
    """The delays the loop slept before each retry, and what it raised at the end (None: it returned)."""
    waits: list[float] = []
    remaining = list(answers)

    def call() -> str:
        if remaining:
            raise remaining.pop(0)
        return "ok"

    stop = threading.Event()
    stop.wait = lambda seconds: waits.append(round(seconds, 3)) or False  # record instead of sleeping
    try:
        retry_call(call, policy, what="test", stop=stop, quiet=True,
                   retryable=lambda e: isinstance(e, Answer) and retryable(e.status, e.headers),
                   delay=lambda e: retry_after(getattr(e, "headers", None)))
        return waits, None
    except Answer as final:
        return waits, final


def test_429_waits_the_retry_after_the_server_named() -> None:
    assert _waits([Answer(429, {"Retry-After": "3"})], RetryPolicy())[0] == [3.0]


def test_a_retry_after_longer_than_the_cap_is_shortened() -> None:
    assert _waits([Answer(503, {"retry-after": "120"})], RetryPolicy(max_delay_s=10))[0] == [10.0]


def test_without_retry_after_the_delay_doubles_per_attempt() -> None:
    waits, _ = _waits([Answer(503), Answer(503), Answer(503)], RetryPolicy(base_delay_s=0.2))
    assert waits == [0.2, 0.4, 0.8]


def test_a_plain_500_is_final_unless_the_server_asks_for_a_retry() -> None:
    assert retryable(500, {}) is False and retryable(500, {"Retry-After": "1"}) is True
    waits, final = _waits([Answer(500)], RetryPolicy())
    assert waits == [] and final is not None and final.status == 500


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_final(status: int) -> None:
    assert retryable(status, {}) is False


def test_the_last_attempt_is_final() -> None:
    waits, final = _waits([Answer(429)] * 3, RetryPolicy(attempts=3))
    assert len(waits) == 2 and final is not None and final.status == 429
