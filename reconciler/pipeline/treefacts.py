"""What cannot change about one exported commit tree: every path's Git object id and kind, which
paths are symbolic links, and each folder's parsed kustomization.

Why: every stack of every environment walks its kustomizations before it renders (the render
cache's key, unvendored Helm charts, paths that must stay inside the repository). On a push to a
base a thousand stacks share, each walk resolved every path it met on the disk (`realpath`: an
`lstat` per component of a deep cache path), listed whole folders looking for links, parsed the
same base kustomization again and read Git ids through the mirror under a lock: about a third of a
daemon's CPU in a fan-out. A tree under `trees/<sha>` is written whole and never modified
(`treeexport`), so these answers are read once per tree, from the listing `git ls-tree` gave when
it was exported, and shared by every engine of the process.

A path with no symbolic link on its way is its own real path: only a path through a link is
resolved on the disk. A folder without the listing (a working copy, or a tree exported by an older
version) has no facts: callers then look at the disk, as before.
"""

from __future__ import annotations

import subprocess
import threading
from collections import OrderedDict
from pathlib import Path

from reconciler.errors import ConfigError, RenderError
from reconciler.yamlfile import load_yaml_file

LISTING_FILE = ".reconciler-tree"
"""In an exported tree: its root tree id on the first line, then `git ls-tree -r -t -z` of the commit."""

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SYMLINK_MODE = "120000"
_KEEP = 4  # as many trees as `treeexport` keeps on disk


def tree_listing(git_dir: Path, sha: str) -> bytes:
    """What `LISTING_FILE` holds for `sha`: its root tree id, a newline, then `git ls-tree -r -t -z`."""
    root = subprocess.run(["git", "--git-dir", str(git_dir), "rev-parse", f"{sha}^{{tree}}"],
                          capture_output=True, check=True).stdout.strip()
    listing = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-t", "-z", "--full-tree", sha],
                             capture_output=True, check=True).stdout
    return root + b"\n" + listing


def listing_entries(listing: bytes) -> dict[str, tuple[str, str]]:
    """path -> (mode, object id), from `git ls-tree -r -t -z` (a listing without its first line)."""
    entries: dict[str, tuple[str, str]] = {}
    for entry in listing.split(b"\0"):
        meta, _, path = entry.partition(b"\t")
        if path:
            mode, _, oid = meta.decode().split(" ")
            entries[path.decode(errors="surrogateescape")] = (mode, oid)
    return entries


class ParsedFiles:
    """Kustomization files parsed, by Git blob id (the newest `keep`): the next commit's tree holds the same
    files, and a push to a base re-read every stack's unchanged kustomization (6% of a daemon's CPU)."""

    def __init__(self, keep: int = 4096) -> None:
        self._keep = keep
        self._parsed: OrderedDict[str, dict] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, blob: str, path: Path) -> dict:
        with self._lock:
            if blob in self._parsed:
                self._parsed.move_to_end(blob)
                return self._parsed[blob]
        data = _parse_kustomization(path)
        with self._lock:
            self._parsed[blob] = data
            while len(self._parsed) > self._keep:
                self._parsed.popitem(last=False)
        return data


class TreeFacts:
    """One exported tree's listing, and the kustomizations read from it so far."""

    def __init__(self, root: Path, root_id: str, entries: dict[str, tuple[str, str]],
                 parsed: ParsedFiles | None = None) -> None:
        self.root = root.resolve()
        self._root_id = root_id
        self._entries = entries  # path -> (mode, object id)
        self.links = frozenset(path for path, (mode, _) in entries.items() if mode == SYMLINK_MODE)
        self._kustomizations: dict[str, dict | None] = {}
        self._parsed = parsed or ParsedFiles()

    @classmethod
    def read(cls, root: Path, parsed: ParsedFiles | None = None) -> TreeFacts | None:
        try:
            raw = (root / LISTING_FILE).read_bytes()
        except OSError:
            return None
        head, _, listing = raw.partition(b"\n")
        return cls(root, head.decode(), listing_entries(listing), parsed)

    def object_id(self, path: str) -> str | None:
        """The Git id of a folder or file (as `GitSource.tree_hash`), None when the commit has no such path."""
        path = path.strip("/")
        if not path:
            return self._root_id
        entry = self._entries.get(path)
        return entry[1] if entry else None

    def real(self, relative: str) -> str | None:
        """The repository-relative path kustomize reads for `relative` (`..` allowed, links followed; ""
        for the root), or None when it leads outside the repository."""
        parts: list[str] = []
        for part in relative.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    return None
                parts.pop()
                continue
            parts.append(part)
            if self.links and "/".join(parts) in self.links:
                return self._resolved(relative)
        return "/".join(parts)

    def _resolved(self, relative: str) -> str | None:
        try:
            real = (self.root / relative).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return None
        return "" if real == "." else real

    def is_dir(self, real: str) -> bool:
        """Whether the real path `real` (from `real()`) is a folder of the tree."""
        return not real or self._entries.get(real, ("", ""))[0] == "040000"

    def links_below(self, folder: str) -> list[str]:
        """The symbolic links in `folder` and its sub-folders (not through other links: as `os.walk` finds them)."""
        prefix = f"{folder}/" if folder else ""
        return sorted(link for link in self.links if link.startswith(prefix))

    def kustomization(self, folder: str) -> dict | None:
        """The parsed kustomization file of the real folder `folder`, or None when it has none. Shared:
        callers must not change it. A file that does not parse raises RenderError every time it is asked."""
        if folder not in self._kustomizations:
            self._kustomizations[folder] = self._read_kustomization(folder)
        return self._kustomizations[folder]

    def _read_kustomization(self, folder: str) -> dict | None:
        """As `read_kustomization` finds it, parsed once per Git blob; a kustomization file that is a link
        is read on the disk, where it leads."""
        found = [(name, self._entries.get(f"{folder}/{name}" if folder else name)) for name in KUSTOMIZATION_FILES]
        if any(entry and entry[0] == SYMLINK_MODE for _, entry in found):
            return read_kustomization(self.root / folder)
        for name, entry in found:
            if entry is not None and (self.root / folder / name).is_file():
                return self._parsed.get(entry[1], self.root / folder / name)
        return None


def read_kustomization(directory: Path) -> dict | None:
    """The parsed kustomization file of `directory`, or None when it has none."""
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            return _parse_kustomization(path)
    return None


def _parse_kustomization(path: Path) -> dict:
    """A kustomization file's mapping ({} for any other YAML); a file that does not parse is a RenderError."""
    try:
        data = load_yaml_file(path)
    except ConfigError as exc:
        raise RenderError(exc.message, fix=exc.fix) from exc
    return data if isinstance(data, dict) else {}


class TreeFolders:
    """One tree's folders by their real repository-relative path ("" for the root; None outside it): from
    its facts when it is an exported tree, else from the disk (a working copy)."""

    def __init__(self, tree_root: Path) -> None:
        self.facts = tree_facts(tree_root)
        self.root = self.facts.root if self.facts else tree_root.resolve()

    def real(self, relative: str) -> str | None:
        if self.facts:
            return self.facts.real(relative)
        directory = (self.root / relative).resolve()
        if not directory.is_relative_to(self.root):
            return None
        real = directory.relative_to(self.root).as_posix()
        return "" if real == "." else real

    def is_dir(self, real: str) -> bool:
        return self.facts.is_dir(real) if self.facts else (self.root / real).is_dir()

    def kustomization(self, real: str) -> dict | None:
        return self.facts.kustomization(real) if self.facts else read_kustomization(self.root / real)

    def has_folder(self, real: str, relative: str) -> bool:
        """Whether `relative` (to the folder `real`) is a folder: anywhere on the disk, as kustomize looks."""
        if self.facts is None or relative.startswith("/"):
            return (self.root / real / relative).is_dir()
        inside = self.facts.real(f"{real}/{relative}" if real else relative)
        return (self.root / real / relative).is_dir() if inside is None else self.facts.is_dir(inside)


class _Known:
    """The facts of the trees read most recently in this process (trees are immutable: an answer is
    never stale; a tree without a listing is not remembered, so one exported later is read then)."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._trees: OrderedDict[Path, TreeFacts] = OrderedDict()
        self._parsed = ParsedFiles()
        self._lock = threading.Lock()

    def get(self, root: Path) -> TreeFacts | None:
        with self._lock:
            if root in self._trees:
                self._trees.move_to_end(root)
                return self._trees[root]
        facts = TreeFacts.read(root, self._parsed)
        if facts is not None:
            with self._lock:
                self._trees[root] = facts
                while len(self._trees) > self._keep:
                    self._trees.popitem(last=False)
        return facts


_KNOWN = _Known(_KEEP)


def tree_facts(root: Path) -> TreeFacts | None:
    """The facts of the exported tree at `root`, None for a folder that is not one."""
    return _KNOWN.get(root)
