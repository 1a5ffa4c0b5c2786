"""Real Git repositories for tests: a bare remote in a temp dir and a working clone that pushes."""

from __future__ import annotations

from pathlib import Path

import git
import yaml


class PushRepo:
    """A working clone of a bare remote; `commit` writes files, commits and pushes to `main`."""

    def __init__(self, root: Path) -> None:
        self.remote_path = root / "remote.git"
        self.work_path = root / "work"
        git.Repo.init(self.remote_path, bare=True, initial_branch="main")
        self.repo = git.Repo.init(self.work_path, initial_branch="main")
        with self.repo.config_writer() as writer:
            writer.set_value("user", "name", "Test Author")
            writer.set_value("user", "email", "author@example.test")
        self.repo.create_remote("origin", str(self.remote_path))

    @property
    def url(self) -> str:
        return str(self.remote_path)

    def write(self, relative: str, content: str | dict | list) -> None:
        path = self.work_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, list):
            path.write_text(yaml.safe_dump_all(content, sort_keys=False))
        else:
            path.write_text(yaml.safe_dump(content, sort_keys=False))

    def remove(self, relative: str) -> None:
        (self.work_path / relative).unlink()

    def commit(self, message: str) -> str:
        self.repo.git.add(A=True)
        self.repo.index.commit(message)
        self.repo.git.push("origin", "main")
        return self.repo.head.commit.hexsha
