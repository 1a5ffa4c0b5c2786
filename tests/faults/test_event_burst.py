"""A burst of watch events (a thousand edits of managed objects) does not stall the daemon or its HTTP
API, and when it is over the drift report holds every edited object."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from kubernetes import client

from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.service import default_engine_factory
from daemon_support import GitRepo, running_daemon, write_env

pytestmark = pytest.mark.cluster

OBJECTS = 200
EDITS_PER_OBJECT = 5


def test_a_burst_of_a_thousand_events_keeps_the_api_answering_and_ends_with_every_edit_reported(
        tmp_path: Path, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    repo = GitRepo.create(tmp_path / "git")
    repo.write("stacks/app/kustomization.yaml", yaml.safe_dump({"resources": ["objects.yaml"]}))
    repo.write("stacks/app/objects.yaml", yaml.safe_dump_all(
        [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}", "namespace": namespace},
          "data": {"v": "git"}} for i in range(OBJECTS)]))
    repo.commit_and_push("objects")
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])], correct_drift=False))
    core = client.CoreV1Api(api_client)
    with running_daemon([env], default_engine_factory(tmp_path / "cache", kubeconfig)) as d:
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1) and d.daemon.states[env.name].last_drift,
                 timeout_s=180, what="the first pass")
        assert d.daemon.engines[env.name].live.wait_synced(30)

        def edit(index: int) -> None:
            for round_ in range(EDITS_PER_OBJECT):
                core.patch_namespaced_config_map(f"cm-{index}", namespace, {"data": {"v": f"edit-{round_}"}})

        answers = []
        with ThreadPoolExecutor(8) as pool:
            burst = pool.map(edit, range(OBJECTS))
            for _ in range(20):  # the HTTP API answers while the events pour in
                answers.append(requests.get(f"{d.base}/api/status", timeout=5).status_code)
            list(burst)

        assert set(answers) == {200}
        last = f"edit-{EDITS_PER_OBJECT - 1}"

        def reported() -> int:
            report = requests.get(f"{d.base}/api/drift", params={"env": env.name}, timeout=5).json()["report"] or {}
            return sum(1 for i in report.get("items", []) if i["fields"][0]["live"] == last)

        wait_for(lambda: reported() == OBJECTS, timeout_s=120, what="every edited object in the drift report")
        assert requests.get(f"{d.base}/healthz", timeout=5).status_code == 200
