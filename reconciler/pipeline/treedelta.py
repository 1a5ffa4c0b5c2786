"""A commit's tree made from an exported tree of another commit: the unchanged files hard-linked, only
what differs written from Git.

Why: a push changes a few files of a repository, and each replica writes every new commit's tree before
any environment of the push can render. Measured on this project's machine for the fleet benchmark's
repository (2,002 files, ext4): `git archive | tar -x` 0.14-0.24 CPU-s (nearly all the file system's),
hard links for the same files 0.05; an export with its listing 0.13-0.14 CPU-s whole, 0.09-0.12 derived.
Exported trees are never modified (kustomize and the render only read them), so their files can be shared
between trees: a new tree links the files it shares with the last one and writes only the others, each a
file of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from reconciler.pipeline.treefacts import LISTING_FILE, SYMLINK_MODE, listing_entries

_FOLDERS, _EXECUTABLE = ("040000", "160000"), "100755"  # a folder, a submodule
MOST_CHANGED = 0.25
"""Past this share of the new tree's entries changed, writing them all is cheaper than linking the rest."""


def derive_tree(git_dir: Path, new: dict[str, tuple[str, str]], base: Path, target: Path) -> bool:
    """Fill the empty folder `target` with the tree whose entries are `new` (`treefacts.listing_entries`),
    from the exported tree `base`: each file the two commits share hard-linked, each other one written from Git. Only
    the commit's own entries are linked, never what else lies in `base` (a chart kustomize pulled there).
    False, with `target` left empty, when that would not pay (too much changed) or cannot be done (no
    readable listing in `base`, a file system without links); the caller writes the whole tree then."""
    try:
        old = listing_entries((base / LISTING_FILE).read_bytes().partition(b"\n")[2])
    except OSError:
        return False
    written = [path for path, entry in new.items() if old.get(path) != entry and entry[0] not in _FOLDERS]
    if len(written) > MOST_CHANGED * max(len(new), 1):
        return False
    try:
        _link_shared(base, target, new, old)
        for path, data in zip(written, blobs(git_dir, [new[path][1] for path in written])):
            _write(target / path, new[path][0], data)
    except OSError:
        _empty(target)
        return False
    return True


def _link_shared(base: Path, target: Path, new: dict[str, tuple[str, str]], old: dict[str, tuple[str, str]]) -> None:
    """The folders of the new tree, and a link to each file it shares with the old one (in path order: a
    folder before what is in it)."""
    for path, entry in sorted(new.items()):
        if entry[0] in _FOLDERS:
            (target / path).mkdir()  # a submodule as `git archive` writes it: an empty folder
        elif old.get(path) == entry:
            if entry[0] == SYMLINK_MODE:
                os.symlink(os.readlink(base / path), target / path)
            else:
                os.link(base / path, target / path)


def _write(path: Path, mode: str, data: bytes) -> None:
    """A file of its own (never written through a link to another tree's), as `git archive | tar -x` writes it."""
    if mode == SYMLINK_MODE:
        os.symlink(data.decode(errors="surrogateescape"), path)
        return
    path.write_bytes(data)
    if mode == _EXECUTABLE:
        path.chmod(0o775)


def _empty(folder: Path) -> None:
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def blobs(git_dir: Path, oids: list[str]) -> list[bytes]:
    """The contents of Git blobs, in order, from one `git cat-file --batch`."""
    if not oids:
        return []
    out = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
                         input="".join(f"{oid}\n" for oid in oids).encode(), capture_output=True, check=True).stdout
    found, at = [], 0
    for _ in oids:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        found.append(out[header_end + 1:header_end + 1 + size])
        at = header_end + 1 + size + 1
    return found
