"""Writing one commit's tree to a folder: `git archive | tar -x`, or from the newest tree already written
when few files differ (`treedelta`), after checking every symbolic link; the folder appears whole or not
at all, and trees unused for a while are removed.

Why not Python's tarfile: extracting a fleet repository's 3,100 files took 0.9-1.3 s of CPU in it,
against 0.3-0.8 s for git and GNU tar; each daemon replica exports every new commit once, before any
environment of a push can render. Its `data` filter refused symbolic links leading outside the
folder; the same rule is applied here before anything is written: a link whose target is absolute
or climbs above the repository is refused, naming it.
"""

from __future__ import annotations

import errno
import posixpath
import shutil
import signal
import subprocess
import time
from pathlib import Path

from reconciler.pipeline.treedelta import blobs, derive_tree
from reconciler.pipeline.treefacts import LISTING_FILE, SYMLINK_MODE, listing_entries, tree_listing

_KEEP_TREES = 4
_TREE_GRACE_S = 600.0


class LinkOutside(Exception):
    """A symbolic link in the tree whose target is outside the repository."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def write_tree(git_dir: Path, sha: str, trees_dir: Path) -> Path:
    """`trees_dir/<sha>`: written into a partial folder first, then renamed into place (the caller holds the
    trees' lock); made from the newest tree already written when few files differ (`treedelta`). Raises
    LinkOutside before writing any file of the tree for a link leaving the repository, OSError when the
    files cannot be written (a full disk), leaving nothing behind but a partial folder the next try removes."""
    target, partial = trees_dir / sha, trees_dir / f".{sha}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        listing = tree_listing(git_dir, sha)
        entries = listing_entries(listing.partition(b"\n")[2])
        _check_links(git_dir, entries)
        base = _newest_tree(trees_dir, sha)
        if base is None or not derive_tree(git_dir, entries, base, partial):
            _extract(git_dir, sha, partial)
    except (LinkOutside, subprocess.CalledProcessError):
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / LISTING_FILE).write_bytes(listing)  # after the files: a file of that name in Git cannot replace it
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    _evict_old_trees(trees_dir, keep=sha)
    return target


def _newest_tree(trees_dir: Path, sha: str) -> Path | None:
    """The most recently used complete tree of another commit, if any."""
    trees = [p for p in trees_dir.iterdir() if p.name != sha and not p.name.startswith(".")
             and (p / ".complete").exists()]
    return max(trees, key=lambda p: p.stat().st_mtime, default=None)


def _evict_old_trees(trees_dir: Path, keep: str) -> None:
    """Past the newest few, trees unused for a while go (sharers may still render an older commit)."""
    trees = sorted((p for p in trees_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for old in trees[_KEEP_TREES:]:
        if old.name != keep and now - old.stat().st_mtime > _TREE_GRACE_S:
            shutil.rmtree(old, ignore_errors=True)


def _check_links(git_dir: Path, entries: dict[str, tuple[str, str]]) -> None:
    """LinkOutside for a symbolic link of the tree whose target is absolute or climbs above the repository."""
    links = [(path, oid) for path, (mode, oid) in entries.items() if mode == SYMLINK_MODE]
    for (path, _), target in zip(links, blobs(git_dir, [oid for _, oid in links])):
        link = target.decode(errors="surrogateescape")
        if link.startswith("/") or _climbs(posixpath.join(posixpath.dirname(path), link)):
            raise LinkOutside(path)


def _extract(git_dir: Path, sha: str, target: Path) -> None:
    """Write every file of `sha` into the existing folder `target`. Raises OSError when the files cannot be
    written (a full disk)."""
    archive = subprocess.Popen(["git", "--git-dir", str(git_dir), "archive", "--format=tar", sha],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    untar = subprocess.run(["tar", "-x", "--no-same-owner", "-C", str(target)], stdin=archive.stdout,
                           capture_output=True, text=True, check=False)
    archive.stdout.close()
    archived = archive.wait()
    problem = archive.stderr.read().decode(errors="replace").strip()
    archive.stderr.close()
    if untar.returncode != 0 or archived != 0:
        raise _write_error(untar, problem)


def _write_error(untar: subprocess.CompletedProcess, problem: str) -> OSError:
    """tar's failure as the OSError Python's own writes raise (`source.export` names the disk)."""
    if untar.returncode == -signal.SIGXFSZ or "File too large" in untar.stderr:
        return OSError(errno.EFBIG, "File too large")
    if "No space left" in untar.stderr:
        return OSError(errno.ENOSPC, "No space left on device")
    return OSError(errno.EIO, " ".join((untar.stderr.strip() or problem).split())[:300] or "tar failed")


def _climbs(path: str) -> bool:
    normal = posixpath.normpath(path)
    return normal == ".." or normal.startswith("../")
