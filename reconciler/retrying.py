"""One retry policy class and one retry loop, on `tenacity`, for everything that asks again: the
Kubernetes API client (429 and 5xx answers, `kube.retry` says which and how long), alert delivery and
commit statuses.

Exponential backoff from `base_delay_s`, capped at `max_delay_s`, for `attempts` tries in all, unless
the caller names the delay (a server's Retry-After); a stop event (the daemon shutting down) ends the
waiting at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_when_event_set, wait_exponential

from reconciler.logs import get_logger, redact_text

log = get_logger("reconciler.retrying")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0


def retry_call(call: Callable[[], T], policy: RetryPolicy, *, what: str,
               stop: threading.Event | None = None, on_failure: Callable[[Exception], None] | None = None,
               retryable: Callable[[BaseException], bool] = lambda _error: True,
               delay: Callable[[BaseException], float | None] = lambda _error: None, quiet: bool = False) -> T:
    """`call()` until it returns; an exception `retryable` accepts is retried per `policy` (after
    `delay(error)` seconds when that names one, else the backoff); any other, or the last, is raised."""
    stopping = stop_after_attempt(max(1, policy.attempts))
    if stop is not None:
        stopping = stopping | stop_when_event_set(stop)
    backoff = wait_exponential(multiplier=policy.base_delay_s, max=policy.max_delay_s)

    def wait(state) -> float:
        named = delay(state.outcome.exception())
        return min(named, policy.max_delay_s) if named is not None else backoff(state)

    def failed(state) -> None:
        error = state.outcome.exception()
        if on_failure is not None:
            on_failure(error)
        if not quiet:
            log.warning(f"{what} failed", attempt=state.attempt_number, error=redact_text(str(error)))

    retrying = Retrying(stop=stopping, reraise=True, before_sleep=failed, wait=wait,
                        retry=retry_if_exception(retryable),
                        sleep=(lambda seconds: stop.wait(seconds)) if stop is not None else _sleep)
    return retrying(call)


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)  # not time.sleep: libfaketime breaks it under a skewed clock
