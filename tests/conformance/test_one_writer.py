"""One writer per environment: every `sync` (and every daemon pass) holds the environment's writer lease
from its first write to its last; a second writer fails naming the holder, or queues with `--wait`.
`plan`, `drift` and `status` only read and never wait."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
from kubernetes import config

from manifests import configmap
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import WriterLease
from scenario import Scenario

pytestmark = pytest.mark.cluster


@pytest.fixture()
def other_writer(scenario: Scenario) -> Iterator[WriterLease]:
    """The environment's writer lease, held by another writer for as long as the test says."""
    cluster = Cluster(config.new_client_from_config(config_file=str(scenario.kubeconfig)))
    lease = WriterLease(cluster, "healthflow-system", f"writer-{scenario.name}", "sync on alice-laptop pid 4242")
    lease.acquire()
    yield lease
    lease.release()


def _settings_stack(scenario: Scenario) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"mode": "blue"})])
    scenario.commit("settings")


def test_a_sync_while_another_writer_holds_the_environment_exits_2_naming_it_and_changes_nothing(
        scenario: Scenario, other_writer: WriterLease) -> None:
    _settings_stack(scenario)

    done = scenario.run("sync")

    assert done.code == 2
    assert "sync on alice-laptop pid 4242" in done.out + done.err
    assert "--wait" in done.out + done.err
    assert scenario.live("configmap", "settings") is None


def test_sync_with_wait_queues_behind_the_other_writer_and_applies_once_it_is_done(
        scenario: Scenario, other_writer: WriterLease) -> None:
    _settings_stack(scenario)
    process = scenario.start("sync", "--wait")
    waiting = threading.Event()
    stderr: list[str] = []

    def read_stderr() -> None:
        for line in process.stderr:
            stderr.append(line)
            if "waiting for sync on alice-laptop pid 4242" in line:
                waiting.set()

    threading.Thread(target=read_stderr, daemon=True).start()
    assert waiting.wait(60), "".join(stderr)
    assert scenario.live("configmap", "settings") is None

    other_writer.release()

    assert process.wait(120) == 1, "".join(stderr)  # 1: changes made
    assert scenario.live("configmap", "settings")["data"] == {"mode": "blue"}


def test_plan_drift_and_status_read_without_the_writer_lease(scenario: Scenario, other_writer: WriterLease) -> None:
    _settings_stack(scenario)

    assert scenario.run("plan").code == 1  # changes found
    assert scenario.run("drift").code == 0
    assert scenario.run("status").code == 0


def test_the_writer_lease_is_given_back_after_a_sync(scenario: Scenario) -> None:
    _settings_stack(scenario)
    assert scenario.run("sync").code == 1

    lease = scenario.kubectl("get", "lease", f"writer-{scenario.name}", "-n", "healthflow-system",
                             "-o", "jsonpath={.spec.holderIdentity}")

    assert lease.stdout == ""
    assert scenario.run("sync").code == 0  # taken again at once: nothing to wait for
