"""The last look at a branch's remote head, kept in its mirror: a fetch asked for before it began reuses it.

Why: a push fans out to every environment following the repository, and each pass (and the drift
check after it) asked the remote for the branch head: a `git ls-remote` and a new GitPython repository
(two `git cat-file` processes) per environment, one after another under the mirror's lock. A look
that *began after* a fetch was asked for saw the remote at least as late as that fetch would have,
so its answer is that fetch's answer; one that began earlier is never reused, so a commit pushed
before a fetch was asked for is always seen.

The record is read and written under the mirror's lock (`source._locked`) and shared by every process
of the machine (the CLI, the daemon): it holds the monotonic clock, common to the processes of one
boot, and the wall clock, which tells a record from before a reboot.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reconciler.files import write_whole
from reconciler.results import CommitInfo

FILE = "reconciler-fetched.json"
_SAME_BOOT_S = 300.0
"""A record whose wall-clock age is beyond this is not trusted (a reboot restarts the monotonic clock)."""


@dataclass(frozen=True)
class Moment:
    """When a fetch was asked for, or a look at the remote began."""

    monotonic: float
    wall: float

    @classmethod
    def now(cls) -> Moment:
        return cls(time.monotonic(), time.time())


def reusable(mirror_dir: Path, url: str, branch: str, asked: Moment) -> CommitInfo | None:
    """The head recorded for `url`'s `branch` by a look that began after `asked`, else None."""
    try:
        entry = json.loads((mirror_dir / FILE).read_text()).get(branch) or {}
        began = Moment(float(entry["monotonic"]), float(entry["wall"]))
        stale = began.monotonic < asked.monotonic or abs(time.time() - began.wall) > _SAME_BOOT_S
        if stale or entry["url"] != _digest(url):
            return None
        return CommitInfo(sha=entry["sha"], author=entry["author"], message=entry["message"],
                          committed_at=datetime.fromisoformat(entry["committed_at"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def record(mirror_dir: Path, url: str, branch: str, began: Moment, head: CommitInfo) -> None:
    """Keep `head` as what a look that began at `began` saw (best effort: without it, the next fetch looks)."""
    path = mirror_dir / FILE
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        entries = {}
    entries = entries if isinstance(entries, dict) else {}
    entries[branch] = {"url": _digest(url), "monotonic": began.monotonic, "wall": began.wall, "sha": head.sha,
                       "author": head.author, "message": head.message, "committed_at": head.committed_at.isoformat()}
    write_whole(path, json.dumps(entries))


def _digest(url: str) -> str:
    """The URL as a hash: it may carry credentials, which never go to disk."""
    return hashlib.sha256(url.encode()).hexdigest()
