"""When an API answer is worth asking again, and how long to wait first.

The API server says "not now" with 429 (API Priority and Fairness, max-in-flight) and with 5xx
while it or etcd restarts, usually with a `Retry-After` header. client-go retries those answers
(up to 10 times, honouring Retry-After); a pass that gave up at the first 429 would fail a whole
stack for a moment's overload. A plain 500 is retried only when the server asks with Retry-After:
an admission webhook's 500 is an answer, not a hiccup. The loop itself is the project's one retry
loop (`reconciler.retrying`, tenacity) with this policy.
"""

from __future__ import annotations

from typing import Mapping

from reconciler.retrying import RetryPolicy

ALWAYS_RETRIED = frozenset({429, 502, 503, 504})

API_RETRY = RetryPolicy(attempts=6, base_delay_s=0.2, max_delay_s=10.0)
"""The first request and five retries; the delay doubles from 0.2 s when the server names none, and a
Retry-After longer than 10 s is shortened to it."""


def retryable(status: int, headers: Mapping[str, str] | None) -> bool:
    """429 and 502-504 always; any other 5xx only when the server asks with Retry-After."""
    return status in ALWAYS_RETRIED or (500 <= status <= 599 and retry_after(headers) is not None)


def retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds (the API server sends whole seconds; an HTTP date is not used by it)."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
