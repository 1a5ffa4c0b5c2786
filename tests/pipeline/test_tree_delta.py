"""A commit's tree made from the tree of the commit before it: the same files as writing it whole, and the
earlier tree untouched."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitrepo import PushRepo
from reconciler.pipeline.source import GitSource


def _files(root: Path) -> dict[str, tuple[str, bytes | str]]:
    """relative path -> ('link', target) | ('exec'|'file', content) | ('dir', ''), our own files left out."""
    found: dict[str, tuple[str, bytes | str]] = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative in (".complete", ".reconciler-tree"):
            continue
        if path.is_symlink():
            found[relative] = ("link", os.readlink(path))
        elif path.is_dir():
            found[relative] = ("dir", "")
        else:
            found[relative] = ("exec" if os.access(path, os.X_OK) and path.stat().st_mode & 0o100 else "file",
                               path.read_bytes())
    return found


def _whole(repo: PushRepo, sha: str, into: Path) -> Path:
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(repo.work_path), "archive", sha], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@pytest.fixture()
def repo(tmp_path: Path) -> PushRepo:
    repo = PushRepo(tmp_path / "git")
    for i in range(20):
        repo.write(f"stacks/s{i}/cm.yaml", {"i": i})
    repo.write("base/shared.yaml", {"value": "v0"})
    repo.write("gone/old.yaml", {"old": True})
    repo.write("becomes-folder", "a file first\n")
    repo.write("tools/run.sh", "#!/bin/sh\n")
    os.symlink("../base/shared.yaml", repo.work_path / "stacks/link.yaml")
    repo.commit("first")
    return repo


def _next_commit(repo: PushRepo) -> str:
    repo.write("base/shared.yaml", {"value": "v1"})
    repo.remove("gone/old.yaml")
    repo.remove("becomes-folder")
    repo.write("becomes-folder/inside.yaml", {"now": "a folder"})
    repo.write("new/added.yaml", {"added": True})
    (repo.work_path / "tools/run.sh").chmod(0o755)
    (repo.work_path / "stacks/link.yaml").unlink()
    os.symlink("s0/cm.yaml", repo.work_path / "stacks/link.yaml")
    return repo.commit("second")


def test_a_tree_made_from_the_previous_commits_tree_holds_exactly_the_files_of_the_commit(
        repo: PushRepo, tmp_path: Path) -> None:
    source = GitSource(repo.url, "main", tmp_path / "cache")
    first = source.export(source.fetch().sha)
    sha = _next_commit(repo)

    second = source.export(source.fetch().sha)

    assert _files(second) == _files(_whole(repo, sha, tmp_path / "whole"))
    unchanged = "stacks/s3/cm.yaml"
    assert (second / unchanged).stat().st_ino == (first / unchanged).stat().st_ino  # linked, not written again


def test_the_earlier_tree_is_unchanged_after_a_later_one_is_made_from_it(repo: PushRepo, tmp_path: Path) -> None:
    source = GitSource(repo.url, "main", tmp_path / "cache")
    first = source.export(source.fetch().sha)
    before = _files(first)
    _next_commit(repo)

    source.export(source.fetch().sha)

    assert _files(first) == before


def test_a_commit_changing_most_files_is_written_whole(repo: PushRepo, tmp_path: Path) -> None:
    source = GitSource(repo.url, "main", tmp_path / "cache")
    first = source.export(source.fetch().sha)
    for i in range(20):
        repo.write(f"stacks/s{i}/cm.yaml", {"i": i + 1})
    sha = repo.commit("everything")

    second = source.export(source.fetch().sha)

    assert _files(second) == _files(_whole(repo, sha, tmp_path / "whole"))
    assert all((second / p).stat().st_ino != (first / p).stat().st_ino for p in ("base/shared.yaml", "tools/run.sh"))


def test_a_file_left_in_the_earlier_tree_that_git_does_not_hold_is_not_carried_into_the_next(
        repo: PushRepo, tmp_path: Path) -> None:
    source = GitSource(repo.url, "main", tmp_path / "cache")
    first = source.export(source.fetch().sha)
    (first / "stacks/s0/charts").mkdir()
    (first / "stacks/s0/charts/pulled.yaml").write_text("a chart kustomize pulled\n")  # not in Git
    sha = _next_commit(repo)

    second = source.export(source.fetch().sha)

    assert not (second / "stacks/s0/charts").exists()
    assert _files(second) == _files(_whole(repo, sha, tmp_path / "whole"))
