"""Fixtures of the pipeline tests: an Engine for an environment file, on the session's cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine


@pytest.fixture()
def engine_for(tmp_path: Path, kubeconfig: Path):
    def build(env_file: Path) -> Engine:
        return Engine(load_environment(env_file), cache_dir=tmp_path / "cache", kubeconfig=kubeconfig)
    return build
