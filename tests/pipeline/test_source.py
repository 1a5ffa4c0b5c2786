"""The Git source: a poll that finds no new commit does not fetch."""

from __future__ import annotations

from pathlib import Path

from reconciler.pipeline.source import GitSource


def test_a_poll_without_a_new_commit_does_not_fetch(repo, tmp_path: Path) -> None:
    repo.write("a.txt", "1")
    first = repo.commit("first")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    assert source.fetch().sha == first
    (source.mirror_dir / "FETCH_HEAD").unlink(missing_ok=True)

    assert source.fetch().sha == first
    assert not (source.mirror_dir / "FETCH_HEAD").exists()  # ls-remote said nothing moved

    repo.write("a.txt", "2")
    second = repo.commit("second")
    assert source.fetch().sha == second
    assert (source.mirror_dir / "FETCH_HEAD").exists()
