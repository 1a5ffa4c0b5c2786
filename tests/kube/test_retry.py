"""Which API answers are asked again, and after how long."""

from reconciler.kube.retry import RetryPolicy


def test_429_waits_the_retry_after_the_server_named() -> None:
    assert RetryPolicy().delay(429, {"Retry-After": "3"}, attempt=0) == 3.0


def test_a_retry_after_longer_than_the_cap_is_shortened() -> None:
    assert RetryPolicy(max_delay_s=10).delay(503, {"retry-after": "120"}, attempt=0) == 10


def test_without_retry_after_the_delay_doubles_per_attempt() -> None:
    policy = RetryPolicy(base_delay_s=0.2)
    assert [policy.delay(503, {}, attempt=n) for n in range(3)] == [0.2, 0.4, 0.8]


def test_a_plain_500_is_final_unless_the_server_asks_for_a_retry() -> None:
    assert RetryPolicy().delay(500, {}, attempt=0) is None
    assert RetryPolicy().delay(500, {"Retry-After": "1"}, attempt=0) == 1.0


def test_client_errors_are_final() -> None:
    assert all(RetryPolicy().delay(status, {}, attempt=0) is None for status in (400, 403, 404, 409, 422))


def test_the_last_attempt_is_final() -> None:
    assert RetryPolicy(attempts=3).delay(429, {}, attempt=2) is None
