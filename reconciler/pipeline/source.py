"""Git: one bare mirror per source URL in the cache, fetched each pass; renders read an exported
tree of one exact commit, never a moving checkout.

Credentials never appear in messages: URLs are shown with any userinfo removed.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
import fcntl
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import git

from reconciler.errors import CacheError, ReconcilerError, SourceError
from reconciler.logs import get_logger
from reconciler.pipeline import fetchmemo
from reconciler.pipeline.treeexport import LinkOutside, write_tree
from reconciler.pipeline.treefacts import tree_facts
from reconciler.results import CommitInfo

_CORRUPTION = ("not a git repository", "corrupt", "bad object", "unable to read", "missing blob", "missing tree",
               "did not send all necessary objects", "loose object")
log = get_logger("reconciler.pipeline.source")


class _CorruptMirror(Exception):
    """The local mirror cannot be read: it is deleted and cloned again."""


def redact_url(url: str) -> str:
    """`https://user:token@host/repo` -> `https://host/repo`."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


@contextmanager
def _locked(path: Path):
    """An exclusive file lock beside `path`: the CLI, the daemon and parallel engines share the cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _git_error(action: str, url: str, exc: Exception) -> SourceError:
    detail = getattr(exc, "stderr", "") or str(exc)
    detail = " ".join(str(detail).split()).replace(url, redact_url(url))[:400]
    return SourceError(f"git {action} of {redact_url(url)} failed: {detail}",
                       fix="check the URL, the branch, network access and the Git credentials")


_DISK_FULL = ("No space left on device", "File too large", "died of signal 25", "Disk quota exceeded",
              "Read-only file system")
_AUTH_REFUSED = ("Authentication failed", "could not read Username", "terminal prompts disabled",
                 "Permission denied (publickey", "The requested URL returned error: 403")


class GitSource:
    """A cached mirror of one repository, and exported trees of the commits a pass renders."""

    def __init__(self, url: str, branch: str, cache_dir: Path, timeout_s: float = 120.0) -> None:
        self.url = url
        self.branch = branch
        self.timeout_s = timeout_s  # a remote that does not answer fails the pass instead of hanging it
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.mirror_dir = cache_dir / "git" / key
        self.trees_dir = cache_dir / "trees" / key
        self._commit_nodes: tuple[str, dict[str, Any]] | None = None  # a commit's folders and files read so far
        self._tree_lock = threading.Lock()

    def open_mirror(self) -> git.Repo:
        """The bare mirror; a new one is an empty repository the fetch fills (GitPython's clone cannot be
        given a timeout, a fetch can)."""
        if (self.mirror_dir / "HEAD").exists():
            repo = git.Repo(self.mirror_dir)
        else:
            self.mirror_dir.parent.mkdir(parents=True, exist_ok=True)
            repo = git.Repo.init(self.mirror_dir, bare=True)
        repo.git.update_environment(GIT_TERMINAL_PROMPT="0")  # a credential prompt would hang a daemon forever
        return repo

    def fetch(self, asked: fetchmemo.Moment | None = None) -> CommitInfo:
        """Fetch the branch and return its head commit (the revision this pass reconciles).

        `git ls-remote` first: when the remote head is the commit the mirror already has, there is
        nothing to fetch (a poll that finds no new commit costs one round trip, not a fetch). A look at
        the remote that began after this call, by any engine or process sharing the mirror, is reused
        (`fetchmemo`: a push fanned out to many environments asks the remote a few times, not once per
        environment). `asked`: since when the caller wants the head (default: now). A local mirror found
        corrupted is deleted and cloned again, once."""
        asked = asked or fetchmemo.Moment.now()
        with _locked(self.mirror_dir):
            seen = fetchmemo.reusable(self.mirror_dir, self.url, self.branch, asked)
            if seen is not None:
                return seen
            began = fetchmemo.Moment.now()
            try:
                head = self._fetch_locked()
            except _CorruptMirror as exc:
                log.warning("git mirror corrupted, cloning again", url=redact_url(self.url), error=str(exc))
                shutil.rmtree(self.mirror_dir, ignore_errors=True)
                self._commit_nodes = None
                head = self._fetch_locked()
            fetchmemo.record(self.mirror_dir, self.url, self.branch, began, head)
            return head

    def _fetch_locked(self) -> CommitInfo:
        try:
            repo = self.open_mirror()
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise _CorruptMirror(str(exc)) from exc
        unchanged = self._known_head(repo)
        if unchanged is not None:
            return unchanged
        try:
            repo.git.fetch("--prune", "--no-tags", self.url, f"+refs/heads/{self.branch}:refs/heads/{self.branch}",
                           kill_after_timeout=self.timeout_s)
        except git.GitCommandError as exc:
            if "couldn't find remote ref" in str(exc.stderr):
                raise SourceError(f"branch {self.branch!r} not found in {redact_url(self.url)}",
                                  fix="check `source.branch` in the environment file") from exc
            if any(marker in str(exc.stderr).lower() for marker in _CORRUPTION):
                raise _CorruptMirror(str(exc.stderr)) from exc
            raise self.error("fetch", exc) from exc
        try:
            return commit_info(repo.commit(f"refs/heads/{self.branch}"))
        except (git.BadName, ValueError) as exc:
            raise _CorruptMirror(f"refs/heads/{self.branch} unreadable after a fetch: {exc}") from exc

    def error(self, action: str, exc: git.GitCommandError) -> ReconcilerError:
        if any(marker in str(exc.stderr) for marker in _DISK_FULL):
            return CacheError(f"git {action} of {redact_url(self.url)} cannot write the mirror in {self.mirror_dir}: "
                              "the disk is full or the folder is not writable",
                              fix="free space on the disk holding the cache folder (--cache-dir), or move it")
        if any(marker in str(exc.stderr) for marker in _AUTH_REFUSED):
            return SourceError(f"git {action} of {redact_url(self.url)}: the Git host refused the credentials",
                               fix="check the token or key the source URL uses (revoked, expired, or no read access)")
        if exc.status == -9 or "timeout" in str(exc.stderr).lower() and "kill" in str(exc.stderr).lower():
            return SourceError(f"git {action} of {redact_url(self.url)} did not answer within {self.timeout_s:.0f}s",
                               fix="check that the Git host is reachable; raise source.timeout for a slow one")
        return _git_error(action, self.url, exc)

    def _known_head(self, repo: git.Repo) -> CommitInfo | None:
        """The mirror's head of the branch, if the remote's head is still that commit; else None."""
        try:
            local = repo.commit(f"refs/heads/{self.branch}")
            remote = repo.git.ls_remote(self.url, f"refs/heads/{self.branch}", kill_after_timeout=self.timeout_s).split()
        except (git.BadName, ValueError, git.GitCommandError):
            return None
        return commit_info(local) if remote and remote[0] == local.hexsha else None

    def resolve(self, revision: str) -> CommitInfo:
        """Any commit-ish known to the mirror (a SHA, a branch fetched earlier) -> its commit."""
        repo = git.Repo(self.mirror_dir)
        try:
            return commit_info(repo.commit(revision))
        except (git.BadName, ValueError) as exc:
            raise SourceError(f"revision {revision!r} not found in {redact_url(self.url)}",
                              fix="give a commit SHA or a branch name that exists in the source") from exc

    def tree_hash(self, sha: str, path: str) -> str | None:
        """The Git object id of `path` at `sha` (a tree or blob), or None if it does not exist there.

        Read in-process from the object database (no `git` subprocess per path), each folder once per
        commit: the render cache asks this for every input of every stack on every pass, and walking
        from the root each time read the same trees again (17% of a daemon's CPU in a fan-out). An exported
        commit answers from its listing (`treefacts`), shared by every engine of the process."""
        facts = tree_facts(self.trees_dir / sha)
        if facts is not None:
            return facts.object_id(path)
        with self._tree_lock:  # one `git cat-file` process behind the tree: two threads at once hang on it
            node = self._node(sha, path.strip("/"))
            return str(node.hexsha) if node is not None else None

    def _node(self, sha: str, path: str) -> Any:
        if self._commit_nodes is None or self._commit_nodes[0] != sha:
            self._commit_nodes = (sha, {"": git.Repo(self.mirror_dir).commit(sha).tree})
        nodes = self._commit_nodes[1]
        if path not in nodes:
            parent, _, name = path.rpartition("/")
            folder = self._node(sha, parent)
            try:
                nodes[path] = folder / name if isinstance(folder, git.Tree) else None
            except KeyError:
                nodes[path] = None
        return nodes[path]

    def export(self, sha: str) -> Path:
        """The full tree of `sha` as files on disk (kustomize overlays reach into ../../base); CacheError
        when the cache folder cannot be written."""
        try:
            return self._export(sha)
        except OSError as exc:
            raise CacheError(f"cannot write the tree of {sha[:10]} under {self.trees_dir}: {exc.strerror}",
                             fix="free space on the disk holding the cache folder (--cache-dir), or move it") from exc

    def _export(self, sha: str) -> Path:
        target = self.trees_dir / sha
        with _locked(self.trees_dir):
            if (target / ".complete").exists():
                target.touch()  # in use: eviction keeps the most recently used
                return target
            try:
                return write_tree(self.mirror_dir, sha, self.trees_dir)
            except LinkOutside as exc:
                raise SourceError(f"commit {sha[:10]}: {exc.path!r} is a symbolic link that leads outside "
                                  "the repository; nothing of this commit is rendered",
                                  fix="make the link relative and inside the repository, or copy the files") from exc
            except subprocess.CalledProcessError as exc:
                raise SourceError(f"commit {sha[:10]} cannot be read from the mirror of {redact_url(self.url)}",
                                  fix="fetch again; a corrupted mirror is cloned again") from exc


_REVISION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/~^@{}+-]{0,199}$")
"""A branch, tag, SHA or `HEAD~2`: never an option (`--upload-pack=...` reaches `git fetch` otherwise)."""


def resolve_remote(source: GitSource, revision: str) -> CommitInfo:
    """A revision named as in the source repository (`HEAD`, a branch, `origin/main`, a tag, a SHA;
    `HEAD~2` too when the source is a local path), fetched into the mirror if it is not there yet."""
    if not _REVISION.match(revision) or ".." in revision:
        raise SourceError(f"revision {revision[:80]!r} is not a branch, tag or commit name",
                          fix="give a branch, tag or commit SHA (letters, digits, . _ / - ~ ^)")
    with _locked(source.mirror_dir):
        repo = source.open_mirror()
        local = Path(source.url)
        try:
            if local.is_dir():
                sha = git.Repo(local).commit(revision).hexsha
                if not _has(repo, sha):
                    repo.git.fetch("--no-tags", source.url, sha, kill_after_timeout=source.timeout_s)
            else:
                if _has(repo, revision):
                    return commit_info(repo.commit(revision))
                repo.git.fetch("--no-tags", source.url, revision, kill_after_timeout=source.timeout_s)
                sha = repo.git.rev_parse("FETCH_HEAD")
            return commit_info(repo.commit(sha))
        except (git.BadName, ValueError, git.GitCommandError, git.InvalidGitRepositoryError) as exc:
            if isinstance(exc, git.GitCommandError) and any(m in str(exc.stderr) for m in _DISK_FULL + _AUTH_REFUSED):
                raise source.error("fetch", exc) from exc
            raise SourceError(f"revision {revision!r} not found in {redact_url(source.url)}",
                              fix="give a branch, tag or commit SHA that exists in the source repository") from exc


def _has(repo: git.Repo, revision: str) -> bool:
    """The mirror has this commit (given as a hex SHA)."""
    if not all(c in "0123456789abcdef" for c in revision.lower()) or len(revision) < 7:
        return False
    try:
        repo.commit(revision)
        return True
    except (git.BadName, ValueError):
        return False


def commit_info(commit: git.Commit) -> CommitInfo:
    return CommitInfo(
        sha=commit.hexsha,
        author=f"{commit.author.name} <{commit.author.email}>",
        message=commit.message.strip().splitlines()[0] if commit.message.strip() else "",
        committed_at=datetime.fromtimestamp(commit.committed_date, tz=timezone.utc),
    )
