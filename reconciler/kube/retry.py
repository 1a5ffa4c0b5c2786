"""When an API answer is worth asking again, and how long to wait first.

The API server says "not now" with 429 (API Priority and Fairness, max-in-flight) and with 5xx
while it or etcd restarts, usually with a `Retry-After` header. client-go retries those answers
(up to 10 times, honouring Retry-After); a pass that gave up at the first 429 would fail a whole
stack for a moment's overload. A plain 500 is retried only when the server asks with Retry-After:
an admission webhook's 500 is an answer, not a hiccup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

ALWAYS_RETRIED = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # the first request and five retries
    base_delay_s: float = 0.2  # doubled per retry when the server names no delay
    max_delay_s: float = 10.0  # a Retry-After longer than this is shortened to it

    def delay(self, status: int, headers: Mapping[str, str] | None, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when this answer is final."""
        if attempt + 1 >= self.attempts:
            return None
        retry_after = _retry_after(headers)
        if status not in ALWAYS_RETRIED and not (500 <= status <= 599 and retry_after is not None):
            return None
        if retry_after is not None:
            return min(retry_after, self.max_delay_s)
        return min(self.base_delay_s * (2 ** attempt), self.max_delay_s)


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Retry-After in seconds (the API server sends whole seconds; an HTTP date is not used by it)."""
    for key, value in (headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None
