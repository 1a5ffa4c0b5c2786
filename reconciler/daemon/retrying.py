"""One retry policy for everything the daemon sends out (alerts, commit statuses), on `tenacity`.

Exponential backoff from `base_delay_s`, capped at `max_delay_s`, for `attempts` tries in all; a
stop event (the daemon shutting down) ends the waiting at once. The Kubernetes client's retries of
429/5xx answers (honouring Retry-After) live in `kube.retry`, beside the requests they judge.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

from tenacity import Retrying, stop_after_attempt, stop_when_event_set, wait_exponential

from reconciler.logs import get_logger, redact_text

log = get_logger("reconciler.daemon.retrying")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0


def retry_call(call: Callable[[], T], policy: RetryPolicy, *, what: str,
               stop: threading.Event | None = None, on_failure: Callable[[Exception], None] | None = None) -> T:
    """`call()` until it returns, retried on any exception per `policy`; the last exception is raised."""
    stopping = stop_after_attempt(max(1, policy.attempts))
    if stop is not None:
        stopping = stopping | stop_when_event_set(stop)

    def failed(state) -> None:
        error = state.outcome.exception()
        if on_failure is not None:
            on_failure(error)
        log.warning(f"{what} failed", attempt=state.attempt_number, error=redact_text(str(error)))

    retrying = Retrying(stop=stopping, reraise=True, before_sleep=failed,
                        wait=wait_exponential(multiplier=policy.base_delay_s, max=policy.max_delay_s),
                        sleep=(lambda seconds: stop.wait(seconds)) if stop is not None else _sleep)
    return retrying(call)


def _sleep(seconds: float) -> None:
    threading.Event().wait(seconds)  # not time.sleep: libfaketime breaks it under a skewed clock
