"""Leases under the faults production brings: a replica whose clock runs a minute fast (a real process
under `faketime`), and a holder whose renewals freeze (a proxy that stops moving bytes). One lease
implementation (kube.lease) serves the writer lease and the leader election, so both are proven here."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kubernetes import client, config

from daemon_support import GitRepo, free_port, watched_repo, write_env
from helpers import wait_for
from reconciler.config import load_environment
from reconciler.kube.cluster import Cluster
from reconciler.kube.lease import WriterLease
from tcpproxy import TcpProxy

pytestmark = pytest.mark.cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = ["faketime", "-f", "+60s"]
"""A wall clock a minute ahead (NTP gone wrong); the monotonic clock, which no NTP step touches, stays real."""
FAST_ENV = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


@pytest.fixture()
def repo(tmp_path: Path, namespace: str) -> GitRepo:
    return watched_repo(tmp_path, namespace)


def _replica(tmp_path: Path, name: str, env_file: Path, kubeconfig: Path, namespace: str,
             prefix: list[str] = ()) -> subprocess.Popen:
    log = open(tmp_path / f"{name}.log", "w")
    command = [*prefix, sys.executable, "-m", "reconciler", "run", "--environments", str(env_file),
               "--listen", f"127.0.0.1:{free_port()}", "--cache-dir", str(tmp_path / f"cache-{name}"),
               "--kubeconfig", str(kubeconfig), "--identity", name, "--leader-election",
               "--lease-namespace", namespace, "--lease-duration", "4s", "--renew-deadline", "3s",
               "--retry-period", "0.5s", "--no-kubernetes-events", "--log-format", "json"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                            env={**FAST_ENV, "RECONCILER_API_TOKEN": "t"}, start_new_session=True)


class LeaseWatch:
    """Reads one Lease over and over: its holder, and how many renewals were seen."""

    def __init__(self, api_client: client.ApiClient, namespace: str, name: str) -> None:
        self.api = client.CoordinationV1Api(api_client)
        self.namespace, self.name = namespace, name
        self.renewals: list[object] = []
        self.holders: set[str] = set()

    def look(self) -> str:
        try:
            spec = self.api.read_namespaced_lease(self.name, self.namespace).spec
        except client.ApiException:
            return ""
        if not self.renewals or self.renewals[-1] != spec.renew_time:
            self.renewals.append(spec.renew_time)
        self.holders.add(spec.holder_identity or "")
        return spec.holder_identity or ""


def test_a_replica_whose_clock_runs_a_minute_fast_never_takes_a_lease_whose_holder_is_renewing(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path,
        processes: list[subprocess.Popen]) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    lease = LeaseWatch(api_client, namespace, f"reconciler-{load_environment(env_file).name}")
    heartbeat = LeaseWatch(api_client, namespace, "reconciler-member-steady")  # what the holder renews
    processes.append(_replica(tmp_path, "steady", env_file, kubeconfig, namespace))
    wait_for(lambda: lease.look() == "steady", timeout_s=60, what="the steady replica to lead")

    processes.append(_replica(tmp_path, "skewed", env_file, kubeconfig, namespace, prefix=FAST))
    wait_for(lambda: '"lease round' in (tmp_path / "skewed.log").read_text()
             or '"daemon started"' in (tmp_path / "skewed.log").read_text(), timeout_s=60,
             what="the skewed replica to start its election rounds")
    seen = len(heartbeat.renewals)
    wait_for(lambda: lease.look() != "steady" or heartbeat.look() and len(heartbeat.renewals) >= seen + 12,
             timeout_s=60, what="twelve heartbeats of the steady replica (one and a half lease durations)")

    assert lease.holders == {"steady"}
    assert processes[1].poll() is None, (tmp_path / "skewed.log").read_text()[-2000:]
    assert f'"lease": "{lease.name}", "event": "lease acquired"' not in (tmp_path / "skewed.log").read_text()


def test_a_sync_whose_clock_runs_a_minute_fast_does_not_take_the_writer_lease_from_a_live_writer(
        tmp_path: Path, repo: GitRepo, namespace: str, api_client: client.ApiClient, kubeconfig: Path) -> None:
    env_file = write_env(tmp_path / "env.yaml", repo, [("app", [])], interval="1h")
    env = load_environment(env_file)
    holder = WriterLease(Cluster(config.new_client_from_config(config_file=str(kubeconfig))), "healthflow-system",
                         f"writer-{env.name}", "steady writer", duration_s=5.0)  # the sync waits one out
    command = [sys.executable, "-m", "reconciler", "sync", "-e", str(env_file), "--cache-dir", str(tmp_path / "cache"),
               "--kubeconfig", str(kubeconfig)]
    # A plan first, on the real clock, fills the Git mirror and the render cache: libfaketime breaks the timed
    # sleeps of a kustomize subprocess under a skewed clock, and the lease is what this test is about.
    subprocess.run([*command[:3], "plan", *command[4:]], capture_output=True, timeout=120, cwd=REPO_ROOT, check=False)
    holder.acquire()
    try:
        sync = subprocess.run([*FAST, *command], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                              env=FAST_ENV)
    finally:
        holder.release()

    assert sync.returncode == 2, sync.stdout + sync.stderr
    assert "steady writer" in sync.stdout + sync.stderr
    assert client.CoreV1Api(api_client).list_namespaced_config_map(
        namespace, field_selector="metadata.name=app-settings").items == []


def test_a_writer_whose_renewals_freeze_stops_writing_before_another_can_take_its_lease(
        kubeconfig: Path, proxy: TcpProxy, proxied_client: client.ApiClient, namespace: str) -> None:
    name = f"writer-{namespace}"
    frozen = WriterLease(Cluster(proxied_client), "healthflow-system", name, "frozen writer", duration_s=3.0)
    frozen.acquire()
    other = WriterLease(Cluster(config.new_client_from_config(config_file=str(kubeconfig))), "healthflow-system",
                        name, "next writer", duration_s=3.0)
    order: list[str] = []
    taken = threading.Event()

    def take() -> None:
        other.acquire(wait_s=None, poll_s=0.2)
        order.append("taken by the next writer")
        taken.set()

    proxy.freeze()
    threading.Thread(target=take, daemon=True).start()
    wait_for(lambda: frozen.lost() or taken.is_set(), timeout_s=60, what="the frozen writer to know it lost the lease")
    order.append("lost by the frozen writer" if frozen.lost() else "not yet lost")
    try:
        assert taken.wait(60), "the next writer never took the lease"
        assert order == ["lost by the frozen writer", "taken by the next writer"]
    finally:
        other.release()
        proxy.resume()
        frozen.release()
