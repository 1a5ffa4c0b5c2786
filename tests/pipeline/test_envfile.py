"""Which environment file is in force at a commit, on plain files (no Git, no cluster)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from reconciler.config import EnvironmentConfig
from reconciler.errors import ConfigError
from reconciler.pipeline.envfile import environment_at
from reconciler.results import CommitInfo

COMMIT = CommitInfo(sha="a" * 40, author="x", message="m", committed_at=datetime.now(timezone.utc))


def local(**source: object) -> EnvironmentConfig:
    return EnvironmentConfig.model_validate({
        "name": "prod", "file": "/etc/reconciler/prod.yaml", "cluster": {"context": "prod-cluster"},
        "source": {"url": "https://git.example.test/platform.git", "environment": "environments/prod.yaml", **source}})


def in_git(tree: Path, **content: object) -> None:
    path = tree / "environments/prod.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    (tree / "apps/web").mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"stacks": [{"name": "web", "path": "apps/web"}], **content}))


def test_stacks_and_settings_come_from_git_and_the_cluster_from_the_local_file(tmp_path: Path) -> None:
    in_git(tmp_path, sync={"interval": "5m"}, cluster={"context": "from-git"})

    env = environment_at(local(), tmp_path, COMMIT)

    assert [s.name for s in env.stacks] == ["web"]
    assert env.sync.interval_s == 300
    assert env.cluster.context == "prod-cluster"
    assert env.source.url == "https://git.example.test/platform.git"
    assert env.file == "environments/prod.yaml@aaaaaaaaaa"


def test_a_file_declaring_another_environment_is_refused(tmp_path: Path) -> None:
    in_git(tmp_path, name="staging")

    with pytest.raises(ConfigError, match="declares environment 'staging'"):
        environment_at(local(), tmp_path, COMMIT)


def test_a_missing_file_names_the_file_and_the_commit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environments/prod.yaml@aaaaaaaaaa: the environment file to follow"):
        environment_at(local(), tmp_path, COMMIT)


def test_a_stack_path_through_a_link_out_of_the_tree_is_refused(tmp_path: Path) -> None:
    tree, outside = tmp_path / "tree", tmp_path / "outside"
    outside.mkdir()
    in_git(tree)
    (tree / "apps/escape").symlink_to(outside)
    (tree / "environments/prod.yaml").write_text(yaml.safe_dump({"stacks": [{"name": "web", "path": "apps/escape"}]}))

    with pytest.raises(ConfigError, match=r"stacks\[0\] \(web\).path: 'apps/escape' leads outside the repository"):
        environment_at(local(), tree, COMMIT)


def test_a_remote_source_without_an_environment_to_follow_keeps_the_local_file(tmp_path: Path) -> None:
    given = EnvironmentConfig.model_validate({"name": "prod", "source": {"url": "https://git.example.test/p.git"},
                                              "stacks": [{"name": "web", "path": "apps/web"}]})
    (tmp_path / "apps/web").mkdir(parents=True)

    assert environment_at(given, tmp_path, COMMIT) is given
