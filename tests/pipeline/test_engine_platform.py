"""The main job: this repository's own dev platform, synced from Git into the cluster, healthy in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from reconciler.config import load_environment
from reconciler.pipeline.engine import Engine
from reconciler.pipeline.inventory import SYSTEM_NAMESPACE
from reconciler.objects import CLUSTER_SCOPED_KINDS
from reconciler.results import StackState
from platform_support import PlatformCleanup

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def dev_engine(tmp_path: Path, kubeconfig: Path, api_client: client.ApiClient,
               platform_cleanup: PlatformCleanup) -> Engine:
    engine = Engine(load_environment(REPO_ROOT / "environments" / "dev.yaml"), cache_dir=tmp_path / "cache",
                    kubeconfig=kubeconfig)
    rendered = engine.render()
    for objects in rendered.objects.values():
        for obj in objects:
            if obj.kind == "Namespace" or obj.kind in CLUSTER_SCOPED_KINDS:
                platform_cleanup.created(obj.manifest)
    yield engine
    try:
        client.CoreV1Api(api_client).delete_namespaced_config_map("reconciler-dev", SYSTEM_NAMESPACE)
    except client.ApiException:
        pass


def test_the_dev_platform_syncs_from_git_healthy_in_dependency_order(dev_engine: Engine) -> None:
    order: list[str] = []

    result = dev_engine.sync(progress=lambda e: order.append(e.stack) if e.phase == "health" else None)

    assert result.error == ""
    assert {s.stack: s.state for s in result.stacks} == {s: StackState.APPLIED for s in
                                                         ("gateway", "discovery", "monitoring", "data", "application")}
    assert all(s.healthy for s in result.stacks)
    assert order == ["gateway", "discovery", "monitoring", "data", "application"]
    objects = sum(len(s.changes) for s in result.stacks)
    print(f"\nfirst sync of dev: {objects} objects in {(result.finished_at - result.started_at).total_seconds():.1f}s, "
          f"{result.total_requests} API requests")

    again = dev_engine.sync()

    assert {s.state for s in again.stacks} == {StackState.UNCHANGED}
    assert again.api_requests.get("patch", 0) <= 5  # per-stack state flips from applied to unchanged
    assert again.total_requests < objects / 2
    print(f"steady-state pass: {again.total_requests} API requests for {objects} objects {again.api_requests}")
