"""The Git source: a poll that finds no new commit does not fetch."""

from __future__ import annotations

import threading
import time
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
