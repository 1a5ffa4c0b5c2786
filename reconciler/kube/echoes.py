"""Our own writes coming back through the live cache's watches: which events count as changes, and when a
watch holds what a LIST would return after our writes.

Kept apart from the cache (kube.livecache) because it is bookkeeping with one lock of its own, a leaf: no
call leaves this module while it is held, so the cache may call in while holding its own locks (a shared
watch hands a starting cache what it holds while `LiveCache.ensure` holds the cache's lock).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from typing import Hashable

COUNTED_KEPT = 4096
"""Events remembered in case the write they echo is noted after them (milliseconds, under load)."""


def owner_of(obj: dict | None, label: str) -> str:
    """An object's owner label value ('' when it has none)."""
    return (((obj or {}).get("metadata") or {}).get("labels") or {}).get(label, "")


def resource_version(obj: dict | None) -> str:
    """An object's metadata.resourceVersion ('' when it has none)."""
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")


class WriteEchoes:
    """Per owner label value (a stack), how many changes the watches delivered, our own writes coming back
    not counted; and the writes the watches have not delivered yet, keyed by (watch key, name)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._lock = threading.Lock()
        self._changes: Counter[str] = Counter()  # owner label value -> events seen for its objects
        self._written: dict[tuple[Hashable, str], tuple[int, str]] = {}  # (version, owner) written, not delivered
        self._counted: OrderedDict[tuple[Hashable, str], tuple[str, str]] = OrderedDict()  # (version, owner)

    def noted(self, key: Hashable, name: str, version: int, owner: str) -> None:
        """We wrote `name` at `version` for `owner`; if its echo came first and was counted, take it back."""
        with self._lock:
            self._written[(key, name)] = (version, owner)
            counted = self._counted.pop((key, name), None)
            if counted is not None and counted[0] == str(version):
                self._changes[counted[1]] -= 1

    def count(self, event_type: str, key: Hashable, name: str, obj: dict | None, owner: str) -> None:
        """One more change for `owner`, unless the event is our own write coming back (the version `noted`).
        One that comes back before its write is noted is counted, and remembered a while so that `noted`
        takes it back. A deletion ends whatever write of that object was pending."""
        version = resource_version(obj)
        with self._lock:
            if event_type == "DELETED":
                self._written.pop((key, name), None)
            written = self._written.get((key, name))
            if event_type in ("ADDED", "MODIFIED") and written is not None and version == str(written[0]):
                return
            self._changes[owner] += 1
            if event_type in ("ADDED", "MODIFIED") and version:
                self._counted[(key, name)] = (version, owner)
                self._counted.move_to_end((key, name))
                if len(self._counted) > COUNTED_KEPT:
                    self._counted.popitem(last=False)

    def changes(self, owner: str) -> int:
        with self._lock:
            return self._changes[owner]

    def caught_up(self, key: Hashable, held_now: dict[str, dict], owner: str) -> bool:
        """Whether `held_now` (a watch's objects of `key`'s namespace) is what a LIST of `owner`'s objects
        would return now, as far as our own writes go. A write not delivered yet counts only if it or the
        version held belongs to `owner`: the previous stack's apply in the same namespace does not send the
        next stack's plan to the API server (a LIST after each stack of a chain was a fifth of a fleet push's
        requests)."""
        with self._lock:
            pending = [(n, v) for (k, n), v in self._written.items() if k == key]
        for name, (version, written_owner) in pending:
            held = held_now.get(name)
            if resource_version(held).isdigit() and int(resource_version(held)) >= version:
                with self._lock:
                    if self._written.get((key, name)) == (version, written_owner):
                        del self._written[(key, name)]
            elif owner in (written_owner, owner_of(held, self.label)):
                return False
        return True
