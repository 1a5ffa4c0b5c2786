"""The local control plane is a real Kubernetes: real scheduling, real controllers, real validation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from helpers import wait_for

pytestmark = pytest.mark.cluster

IMAGE = "registry.k8s.io/pause:3.10"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _deployment(name: str, replicas: int, anti_affinity: bool = False) -> dict:
    labels = {"app": name}
    spec: dict = {"containers": [{"name": "main", "image": IMAGE,
                                  "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
    if anti_affinity:
        spec["affinity"] = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": labels}, "topologyKey": "kubernetes.io/hostname"}]}}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": spec}},
    }


def _pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def _deployment_available(apps: client.AppsV1Api, namespace: str, name: str, replicas: int) -> bool:
    status = apps.read_namespaced_deployment_status(name, namespace).status
    return (status.available_replicas or 0) == replicas and (status.updated_replicas or 0) == replicas


def test_three_nodes_are_ready_in_three_zones(api_client: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api_client).list_node(label_selector="type=kwok").items
    ready = [n for n in nodes if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)]
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in ready}
    assert len(ready) >= 3
    assert {"zone-a", "zone-b", "zone-c"} <= zones


def test_required_anti_affinity_spreads_three_replicas_and_leaves_a_fourth_pending(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("spread", 3, anti_affinity=True))

    wait_for(lambda: _deployment_available(apps, namespace, "spread", 3), what="3 available replicas")
    assert len({p.spec.node_name for p in _pods(core, namespace, "spread")}) == 3

    apps.patch_namespaced_deployment_scale("spread", namespace, {"spec": {"replicas": 4}})

    def unschedulable_pod() -> list[client.V1Pod]:
        return [p for p in _pods(core, namespace, "spread") if p.status.phase == "Pending" and any(
            c.type == "PodScheduled" and c.reason == "Unschedulable" for c in (p.status.conditions or []))]

    pending = wait_for(unschedulable_pod, what="the 4th pod marked Unschedulable")
    assert len(pending) == 1
    assert pending[0].spec.node_name is None


def test_server_side_apply_with_field_manager_and_dry_run(api_client: client.ApiClient, namespace: str) -> None:
    configmaps = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa", "namespace": namespace},
            "data": {"greeting": "hello"}}

    dry = configmaps.server_side_apply(body=body, field_manager="healthflow-test", dry_run="All")
    assert dry.data["greeting"] == "hello"
    with pytest.raises(ApiException) as not_created:
        client.CoreV1Api(api_client).read_namespaced_config_map("ssa", namespace)
    assert not_created.value.status == 404

    applied = configmaps.server_side_apply(body=body, field_manager="healthflow-test")
    managers = [m.manager for m in applied.metadata.managedFields]
    assert managers == ["healthflow-test"]
    assert client.CoreV1Api(api_client).read_namespaced_config_map("ssa", namespace).data == {"greeting": "hello"}


def test_server_side_apply_reports_a_conflict_with_another_field_manager(
    api_client: client.ApiClient, namespace: str
) -> None:
    configmaps = dynamic.DynamicClient(api_client).resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owned", "namespace": namespace},
            "data": {"key": "first"}}
    configmaps.server_side_apply(body=body, field_manager="someone-else")

    body["data"]["key"] = "second"
    with pytest.raises(ApiException) as conflict:
        configmaps.server_side_apply(body=body, field_manager="healthflow-test")
    assert conflict.value.status == 409


def test_network_policy_pdb_and_hpa_are_accepted(api_client: client.ApiClient, namespace: str) -> None:
    client.NetworkingV1Api(api_client).create_namespaced_network_policy(namespace, {
        "metadata": {"name": "default-deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}})
    client.PolicyV1Api(api_client).create_namespaced_pod_disruption_budget(namespace, {
        "metadata": {"name": "web"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    client.AutoscalingV2Api(api_client).create_namespaced_horizontal_pod_autoscaler(namespace, {
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 3, "maxReplicas": 6,
                 "metrics": [{"type": "Resource", "resource": {
                     "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}})

    assert client.NetworkingV1Api(api_client).read_namespaced_network_policy("default-deny", namespace)
    assert client.PolicyV1Api(api_client).read_namespaced_pod_disruption_budget("web", namespace)
    hpa = client.AutoscalingV2Api(api_client).read_namespaced_horizontal_pod_autoscaler("web", namespace)
    assert hpa.spec.min_replicas == 3


def test_deployment_without_selector_is_rejected_with_422(api_client: client.ApiClient, namespace: str) -> None:
    invalid = _deployment("invalid", 1)
    del invalid["spec"]["selector"]

    deployments = dynamic.DynamicClient(api_client).resources.get(api_version="apps/v1", kind="Deployment")

    with pytest.raises(ApiException) as rejected:  # the dynamic client sends it as is: the server judges
        deployments.create(body=invalid, namespace=namespace)

    assert rejected.value.status == 422
    assert "selector" in rejected.value.body


def test_statefulset_with_three_replicas_becomes_ready(api_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "db"}
    client.CoreV1Api(api_client).create_namespaced_service(namespace, {
        "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 5432}]}})
    apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "db"},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                     {"name": "db", "image": IMAGE}]}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})

    def ready() -> bool:
        status = apps.read_namespaced_stateful_set_status("db", namespace).status
        return (status.ready_replicas or 0) == 3 and status.current_revision == status.update_revision

    wait_for(ready, what="StatefulSet db with 3 ready replicas")
    claims = client.CoreV1Api(api_client).list_namespaced_persistent_volume_claim(namespace).items
    assert sorted(c.status.phase for c in claims) == ["Bound"] * 3


def test_deleted_pods_go_away(api_client: client.ApiClient, namespace: str) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("shrink", 2))
    wait_for(lambda: _deployment_available(apps, namespace, "shrink", 2), what="2 available replicas")

    apps.patch_namespaced_deployment_scale("shrink", namespace, {"spec": {"replicas": 0}})

    wait_for(lambda: not _pods(core, namespace, "shrink"), what="pods of a scaled-down Deployment to be gone")


@pytest.mark.long
def test_a_second_devcluster_runs_beside_and_down_leaves_no_process(tmp_path: Path, kubeconfig: Path) -> None:
    from devcluster.cluster import ClusterState
    from devcluster.processes import is_alive

    state_dir = tmp_path / "second"
    command = [sys.executable, "-m", "devcluster", "--state-dir", str(state_dir), "--nodes", "1"]
    subprocess.run([*command[:3], "up", *command[3:]], check=True, cwd=REPO_ROOT, timeout=300)
    state = ClusterState.load(state_dir)
    assert state is not None
    assert all(is_alive(c) for c in state.components)
    nodes = subprocess.run(["kubectl", "--kubeconfig", str(state.kubeconfig), "get", "nodes", "-o", "name"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert nodes == ["node/kwok-node-0"]

    subprocess.run([*command[:3], "down", *command[3:]], check=True, cwd=REPO_ROOT, timeout=120)

    assert not any(is_alive(c) for c in state.components)
    assert not state_dir.exists()
