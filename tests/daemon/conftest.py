"""Fixtures of the daemon tests against the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon_support import GitRepo, configmap_stack


@pytest.fixture()
def repo(tmp_path: Path, namespace: str) -> GitRepo:
    """A watched repository with one stack: ConfigMap `app-settings` (value=v1) in the test's namespace."""
    repo = GitRepo.create(tmp_path / "git")
    configmap_stack(repo, "app", namespace, {"value": "v1"})
    repo.commit_and_push("v1")
    return repo
