"""The Git source: a poll that finds no new commit does not fetch."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from reconciler.errors import SourceError
from reconciler.pipeline import fetchmemo
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


def test_threads_reading_the_git_ids_of_one_commit_at_once_each_get_their_own_answer(repo, tmp_path: Path) -> None:
    """A pass and the live-drift thread render one environment at once: both read Git ids through the
    source's one `git cat-file` process, and answers must not cross (a crossed one left a pass hanging)."""
    for i in range(40):
        repo.write(f"stacks/s{i}/kustomization.yaml", f"# {i}\n")
    sha = repo.commit("forty stacks")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()
    expected = {f"stacks/s{i}": source.tree_hash(sha, f"stacks/s{i}") for i in range(40)}
    source = GitSource(repo.url, "main", tmp_path / "cache")  # a cold tree: every read goes to the process

    answers: list[dict[str, str | None]] = []

    def read_all(offset: int) -> None:
        paths = [f"stacks/s{(i + offset) % 40}" for i in range(40)]
        answers.append({path: source.tree_hash(sha, path) for path in paths for _ in range(5)})

    threads = [threading.Thread(target=read_all, args=(n * 5,), daemon=True) for n in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60  # a guard: crossed answers leave a reader waiting forever
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))

    assert len(answers) == 8 and all(answer == expected for answer in answers)


def _looks_at_the_remote(trace: Path) -> int:
    """`git ls-remote` runs recorded by GIT_TRACE2_EVENT."""
    return sum(1 for line in trace.read_text().splitlines() if '"event":"cmd_name"' in line and '"ls-remote"' in line) \
        if trace.exists() else 0


def test_fetches_asked_for_before_a_look_at_the_remote_began_share_its_answer(
        repo, tmp_path: Path, monkeypatch) -> None:
    repo.write("a.txt", "1")
    repo.commit("first")
    GitSource(repo.url, "main", tmp_path / "cache").fetch()
    repo.write("a.txt", "2")
    second = repo.commit("second")
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))
    sources = [GitSource(repo.url, "main", tmp_path / "cache") for _ in range(5)]  # five engines, one mirror
    asked = fetchmemo.Moment.now()  # all five asked for the head before any of them looked

    heads = [source.fetch(asked).sha for source in sources]

    assert heads == [second] * 5
    assert _looks_at_the_remote(trace) == 1


def test_a_fetch_asked_for_after_the_last_look_at_the_remote_looks_again_and_sees_a_new_commit(
        repo, tmp_path: Path, monkeypatch) -> None:
    repo.write("a.txt", "1")
    repo.commit("first")
    one, other = (GitSource(repo.url, "main", tmp_path / "cache") for _ in range(2))
    one.fetch()
    repo.write("a.txt", "2")
    second = repo.commit("second")
    trace = tmp_path / "trace.json"
    monkeypatch.setenv("GIT_TRACE2_EVENT", str(trace))

    assert other.fetch().sha == second
    assert _looks_at_the_remote(trace) == 1


def test_an_exported_tree_keeps_the_commits_files_and_its_links_inside_the_repository(repo, tmp_path: Path) -> None:
    repo.write("base/app/cm.yaml", "kind: ConfigMap\n")
    (repo.work_path / "apps").mkdir()
    (repo.work_path / "apps/linked").symlink_to("../base/app")
    sha = repo.commit("a link inside the repository")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()

    tree = source.export(sha)

    assert (tree / "base/app/cm.yaml").read_text() == "kind: ConfigMap\n"
    assert (tree / "apps/linked").is_symlink() and (tree / "apps/linked/cm.yaml").is_file()


@pytest.mark.parametrize("target", ["/etc", "../../../outside"])
def test_a_commit_with_a_link_leading_outside_the_repository_is_refused_and_nothing_of_it_is_written(
        repo, tmp_path: Path, target: str) -> None:
    repo.write("apps/web/kustomization.yaml", "resources: []\n")
    (repo.work_path / "apps/web/escape").symlink_to(target)
    sha = repo.commit("a link out of the repository")
    source = GitSource(repo.url, "main", tmp_path / "cache")
    source.fetch()

    with pytest.raises(SourceError, match="'apps/web/escape' is a symbolic link that leads outside the repository"):
        source.export(sha)
    assert not any(source.trees_dir.glob(f"*{sha}*"))
