"""`up`, `down` and `status` of one devcluster, whose whole state lives in one folder.

The folder (default `.devcluster/` in the current directory) holds the kubeconfig, the PKI, the
logs, `state.json` (ports and pids) and, unless /dev/shm exists, etcd's data. `down` stops every
process recorded there and removes the folder, so nothing outlives it.
"""

from __future__ import annotations

import json
import shutil
import ssl
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from devcluster import processes
from devcluster.build import build
from devcluster.pki import Pki, create_pki, pki_paths
from devcluster.processes import Component, StartError
from devcluster.versions import STAGES_FILE

SERVICE_CIDR = "10.96.0.0/16"
START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass
class ClusterState:
    state_dir: str
    api_port: int = 0
    etcd_port: int = 0
    etcd_peer_port: int = 0
    etcd_data_dir: str = ""
    components: list[Component] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return Path(self.state_dir) / "kubeconfig"

    def save(self) -> None:
        data = asdict(self)
        (Path(self.state_dir) / "state.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, state_dir: Path) -> "ClusterState | None":
        path = state_dir / "state.json"
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        data["components"] = [Component(**c) for c in data.get("components", [])]
        return cls(**data)


def _write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "devcluster", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}],
        "users": [{"name": "devcluster-admin", "user": {
            "client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)}}],
        "contexts": [{"name": "devcluster", "context": {"cluster": "devcluster", "user": "devcluster-admin"}}],
        "current-context": "devcluster",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _https_ok(url: str, pki: Pki | None = None) -> bool:
    context = ssl.create_default_context(cafile=str(pki.ca_cert)) if pki else ssl._create_unverified_context()
    if pki:
        context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    with urllib.request.urlopen(url, context=context, timeout=3) as response:
        return response.status == 200


def _http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=3) as response:
        return json.loads(response.read())


def _etcd_data_dir(state_dir: Path) -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir():
        return Path(tempfile.mkdtemp(prefix="devcluster-etcd-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="etcd-", dir=state_dir))


def _start_etcd(bins: Path, state: ClusterState, logs: Path, data_dir: Path | None = None) -> int:
    """Start etcd; with `data_dir` (a restart) on the recorded client and peer ports, keeping its data."""
    client = state.etcd_port or processes.free_port()
    peer = state.etcd_peer_port or processes.free_port()
    state.etcd_peer_port = peer
    data_dir = data_dir or _etcd_data_dir(Path(state.state_dir))
    state.etcd_data_dir = str(data_dir)
    component = processes.start("etcd", [
        str(bins / "etcd"), "--name=devcluster", f"--data-dir={data_dir}",
        f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=devcluster=http://127.0.0.1:{peer}", "--unsafe-no-fsync=true",
        "--quota-backend-bytes=4294967296", "--log-level=warn",
    ], logs)
    state.components.insert(0, component)  # first in start order, last to stop
    state.save()
    processes.wait_until(lambda: _http_json(f"http://127.0.0.1:{client}/health").get("health") == "true",
                         component, "etcd /health", 60)
    return client


def _start_apiserver(bins: Path, state: ClusterState, logs: Path, pki: Pki, etcd_port: int) -> None:
    state.api_port = state.api_port or processes.free_port()
    component = processes.start("kube-apiserver", [
        str(bins / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={state.api_port}",
        f"--tls-cert-file={pki.server_cert}", f"--tls-private-key-file={pki.server_key}",
        f"--client-ca-file={pki.ca_cert}", "--authorization-mode=Node,RBAC",
        f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
        "--enable-priority-and-fairness=false",
        "--cert-dir=" + str(Path(state.state_dir) / "pki"), "--v=1",
    ], logs)
    state.components.append(component)
    state.save()
    processes.wait_until(lambda: _https_ok(f"https://127.0.0.1:{state.api_port}/readyz", pki),
                         component, "kube-apiserver /readyz", 120)


CONTROLLER_QPS = 200
"""Client QPS of the controller-manager and scheduler (defaults 20 and 50): thousands of Deployments
must become pods at the pace the benchmarks measure the tools at, not at the controllers' throttle."""


def _start_controllers(bins: Path, state: ClusterState, logs: Path, pki: Pki) -> None:
    kubeconfig = str(state.kubeconfig)
    kcm_port, scheduler_port = processes.free_port(), processes.free_port()
    kcm = processes.start("kube-controller-manager", [
        str(bins / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={kcm_port}", "--leader-elect=false",
        f"--root-ca-file={pki.ca_cert}", f"--service-account-private-key-file={pki.sa_key}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--use-service-account-credentials=false",
        "--controllers=*,-nodeipam", "--node-monitor-grace-period=60s", "--v=1",
        f"--kube-api-qps={CONTROLLER_QPS}", f"--kube-api-burst={CONTROLLER_QPS * 2}",
        "--concurrent-deployment-syncs=20", "--concurrent-replicaset-syncs=20",
    ], logs)
    scheduler = processes.start("kube-scheduler", [
        str(bins / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1", f"--secure-port={scheduler_port}", "--leader-elect=false", "--v=1",
        f"--kube-api-qps={CONTROLLER_QPS}", f"--kube-api-burst={CONTROLLER_QPS * 2}",
    ], logs)
    kwok = processes.start("kwok", [
        str(bins / "kwok"), f"--kubeconfig={kubeconfig}", f"--config={STAGES_FILE}",
        "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
        "--node-lease-duration-seconds=40", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1",
    ], logs)
    state.components += [kcm, scheduler, kwok]
    state.save()
    processes.wait_until(lambda: _https_ok(f"https://127.0.0.1:{kcm_port}/healthz"), kcm, "controller-manager /healthz", 60)
    processes.wait_until(lambda: _https_ok(f"https://127.0.0.1:{scheduler_port}/healthz"), scheduler,
                         "scheduler /healthz", 60)


def up(state_dir: Path, nodes: int = 3) -> ClusterState:
    """Build (if needed) and start a devcluster; a running one is left as is."""
    from devcluster.seed import seed_cluster

    state_dir = state_dir.resolve()
    existing = ClusterState.load(state_dir)
    if existing and all(processes.is_alive(c) for c in existing.components):
        print(f"devcluster: already running (kubeconfig {existing.kubeconfig})")
        return existing
    if existing:
        down(state_dir, quiet=True)
    bins = build()
    started = time.monotonic()
    state_dir.mkdir(parents=True, exist_ok=True)
    logs = state_dir / "logs"
    logs.mkdir(exist_ok=True)
    state = ClusterState(state_dir=str(state_dir))
    pki = create_pki(state_dir / "pki")
    try:
        etcd_port = state.etcd_port = _start_etcd(bins, state, logs)
        _start_apiserver(bins, state, logs, pki, etcd_port)
        _write_kubeconfig(state.kubeconfig, f"https://127.0.0.1:{state.api_port}", pki)
        _start_controllers(bins, state, logs, pki)
        seed_cluster(state.kubeconfig, nodes, alive=lambda: _check_alive(state))
    except BaseException:
        down(state_dir, quiet=True, keep_logs=True)
        raise
    print(f"devcluster: up in {time.monotonic() - started:.1f}s, {nodes} kwok nodes; "
          f"export KUBECONFIG={state.kubeconfig}")
    return state


def restart_apiserver(state_dir: Path) -> None:
    """Stop kube-apiserver and start it again on the same port: what every client sees when the API server
    restarts (fault tests). The other components reconnect by themselves."""
    state = ClusterState.load(state_dir.resolve())
    if state is None or not state.etcd_port:
        raise StartError(f"no devcluster with a recorded etcd port in {state_dir}")
    component = next(c for c in state.components if c.name == "kube-apiserver")
    place = state.components.index(component)
    # SIGTERM: it stops listening and drains its in-flight requests at once, then waits up to its 60 s
    # shutdown timeout for the watch streams its clients keep open; SIGKILL after 3 s, not 15
    processes.stop(component, timeout_s=3.0)
    state.components.remove(component)
    _start_apiserver(build(), state, Path(state.state_dir) / "logs", pki_paths(Path(state.state_dir) / "pki"),
                     state.etcd_port)
    # back in its place in the start order: `down` stops in reverse, and stopped before the components that
    # talk to it, the API server left the controller-manager, scheduler and kwok hanging on SIGTERM until
    # the 15 s SIGKILL
    state.components.insert(place, state.components.pop())
    state.save()


def restart_etcd(state_dir: Path) -> None:
    """Stop etcd and start it again on the same ports with the same data: the API server answers errors
    (and its watches end) until etcd is back (fault tests)."""
    state = ClusterState.load(state_dir.resolve())
    if state is None or not state.etcd_port or not state.etcd_peer_port or not state.etcd_data_dir:
        raise StartError(f"no devcluster with recorded etcd ports and data in {state_dir}")
    component = next(c for c in state.components if c.name == "etcd")
    processes.stop(component)
    state.components.remove(component)
    _start_etcd(build(), state, Path(state.state_dir) / "logs", Path(state.etcd_data_dir))


def _check_alive(state: ClusterState) -> None:
    for component in state.components:
        if not processes.is_alive(component):
            raise StartError(f"{component.name} died; last log lines:\n{processes.log_tail(component)}")


def down(state_dir: Path, quiet: bool = False, keep_logs: bool = False) -> None:
    """Stop every recorded process (reverse start order) and remove the state."""
    state = ClusterState.load(state_dir)
    if state is None:
        if not quiet:
            print(f"devcluster: nothing running in {state_dir}")
        return
    for component in reversed(state.components):
        processes.stop(component)
    if state.etcd_data_dir:
        shutil.rmtree(state.etcd_data_dir, ignore_errors=True)
    if keep_logs:
        (state_dir / "state.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(state_dir, ignore_errors=True)
    if not quiet:
        print(f"devcluster: stopped {len(state.components)} processes, removed {state_dir}")


@contextmanager
def temporary(nodes: int = 3, prefix: str = "devcluster-") -> Iterator[Path]:
    """A devcluster of its own for one benchmark run, in a temporary folder: its kubeconfig while the
    block runs; stopped and removed after it, whatever happened."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        state_dir = Path(tmp) / "devcluster"
        up(state_dir, nodes=nodes)
        try:
            yield state_dir / "kubeconfig"
        finally:
            down(state_dir, quiet=True)


@contextmanager
def named_or_temporary(kubeconfig: Path | None, nodes: int = 3, prefix: str = "devcluster-") -> Iterator[Path]:
    """The cluster a benchmark was pointed at (`--kubeconfig`, left as it is), or else one of its own for the
    run (`temporary`)."""
    if kubeconfig is not None:
        yield kubeconfig
        return
    with temporary(nodes, prefix) as path:
        yield path


def status(state_dir: Path) -> int:
    """Print each component's state; exit code 0 only if all run."""
    state = ClusterState.load(state_dir)
    if state is None:
        print(f"devcluster: not running (no {state_dir / 'state.json'})")
        return 1
    dead = [c for c in state.components if not processes.is_alive(c)]
    for component in state.components:
        mark = f"running {processes.rss_mib(component):6.0f} MiB" if component not in dead else "DEAD"
        print(f"{component.name:<24} pid {component.pid:<8} {mark}   log {component.log}")
    print(f"{'memory of the control plane':<33} {sum(processes.rss_mib(c) for c in state.components):6.0f} MiB")
    for component in dead:
        print(f"\n--- {component.name} exited; last log lines ---\n{processes.log_tail(component)}")
    print(f"kubeconfig: {state.kubeconfig}")
    return 1 if dead else 0
