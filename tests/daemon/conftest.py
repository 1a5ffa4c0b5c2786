"""Fixtures of the daemon tests against the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon_support import GitRepo, watched_repo


@pytest.fixture()
def repo(tmp_path: Path, namespace: str) -> GitRepo:
    return watched_repo(tmp_path, namespace)
