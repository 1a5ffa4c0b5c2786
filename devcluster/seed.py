"""What a fresh devcluster gets before anyone uses it: kwok fake nodes spread over three zones,
and a default StorageClass `standard` whose claims kwok binds (see kwok/stages.yaml)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from kubernetes import client, config
from kubernetes.client.rest import ApiException

ZONES = ("zone-a", "zone-b", "zone-c")
NODE_CPU = "8"
NODE_MEMORY = "16Gi"
NODE_PODS = "110"


def node_manifest(index: int) -> dict:
    """A worker like the platform's: 8 cores, 16 GiB, in zone a/b/c round-robin."""
    name = f"kwok-node-{index}"
    zone = ZONES[index % len(ZONES)]
    capacity = {"cpu": NODE_CPU, "memory": NODE_MEMORY, "pods": NODE_PODS, "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "node-role.kubernetes.io/worker": "",
                "topology.kubernetes.io/zone": zone,
                "topology.kubernetes.io/region": "devcluster",
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity, "phase": "Running"},
    }


STORAGE_CLASS = {
    "apiVersion": "storage.k8s.io/v1",
    "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "kwok.x-k8s.io/volume",
    "reclaimPolicy": "Delete",
    "volumeBindingMode": "Immediate",
    "allowVolumeExpansion": True,
}


def _create(create: Callable[[], object]) -> None:
    try:
        create()
    except ApiException as exc:
        if exc.status != 409:
            raise


def _ready_nodes(core: client.CoreV1Api) -> int:
    ready = 0
    for node in core.list_node(label_selector="type=kwok").items:
        conditions = {c.type: c.status for c in (node.status.conditions or [])}
        ready += conditions.get("Ready") == "True"
    return ready


def _default_service_account(core: client.CoreV1Api) -> bool:
    try:
        core.read_namespaced_service_account("default", "default")
        return True
    except ApiException:
        return False


def seed_cluster(kubeconfig: Path, nodes: int, alive: Callable[[], None], timeout_s: float = 120) -> None:
    """Create nodes and the StorageClass, then wait until the nodes are Ready and the
    controller-manager has made the default ServiceAccount (both prove the loop is closed)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    core, storage = client.CoreV1Api(api), client.StorageV1Api(api)
    for index in range(nodes):
        _create(lambda i=index: core.create_node(node_manifest(i)))
    _create(lambda: storage.create_storage_class(STORAGE_CLASS))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive()
        if _ready_nodes(core) >= nodes and _default_service_account(core):
            return
        time.sleep(0.3)
    raise TimeoutError(f"{nodes} kwok nodes not Ready within {timeout_s:.0f}s (see .devcluster/logs/kwok.log)")
