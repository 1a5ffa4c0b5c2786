"""The platform against a real API server (the devcluster): the API server accepts every prod
object (server-side apply, dry-run), and the dev platform, applied for real in stack order,
becomes healthy on the three kwok nodes.

Both tests own the hf-* namespaces (and the platform's few cluster-scoped objects) while they
run and remove what they created afterwards, so other tests see a clean cluster.
"""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from helpers import wait_for
from test_platform_render import CLUSTER_SCOPED_KINDS, NAMESPACES, ORIGIN, STACKS, Obj, ident, render

pytestmark = pytest.mark.cluster

FIELD_MANAGER = "healthflow-platform-test"
# Objects other objects refer to go first, so that controllers do not back off on a missing
# ServiceAccount or ConfigMap.
APPLY_ORDER = ("Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass", "ServiceAccount",
               "ConfigMap", "Secret", "Role", "RoleBinding", "NetworkPolicy", "Service")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def for_apply(obj: Obj) -> Obj:
    """What the engine sends: the origin annotation is lifted out before apply."""
    body = dict(obj)
    metadata = dict(body["metadata"])
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != ORIGIN}
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    body["metadata"] = metadata
    return body


def apply_order(objs: list[Obj]) -> list[Obj]:
    rank = {kind: i for i, kind in enumerate(APPLY_ORDER)}
    return sorted(objs, key=lambda o: rank.get(o["kind"], len(APPLY_ORDER)))


def apply(dyn: dynamic.DynamicClient, obj: Obj, dry_run: bool) -> None:
    """Server-side apply one object; an API rejection fails the test naming the object."""
    resource = dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
    kwargs = {"dry_run": "All"} if dry_run else {}
    try:
        resource.server_side_apply(body=for_apply(obj), field_manager=FIELD_MANAGER, **kwargs)
    except ApiException as exc:
        pytest.fail(f"the API server rejected {ident(obj)}{' (dry-run)' if dry_run else ''}: "
                    f"{exc.status} {exc.reason}: {exc.body}")


def wait_until_empty(pending: Callable[[], list[str]], timeout_s: float, what: str) -> None:
    """wait_for, but a timeout names what is still pending at the end (not at the start)."""
    try:
        wait_for(lambda: not pending(), timeout_s=timeout_s, what=what)
    except pytest.fail.Exception:
        pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}; still pending: {pending()}")


def namespace_exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespace(name)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


class PlatformCleanup:
    """Records what a test creates for real and removes it afterwards, waiting until the
    namespaces are gone so the next test starts clean."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.dyn = dynamic.DynamicClient(api_client)
        self.namespaces: list[str] = []
        self.cluster_objects: list[Obj] = []

    def claim_namespaces(self) -> None:
        """The hf-* namespaces must be ours alone: wait out a previous run's deletion, and skip
        (rather than trample) if someone else's sync is using them."""
        names = list(NAMESPACES.values())
        wait_until_empty(lambda: [n for n in names if self._phase(n) == "Terminating"],
                         timeout_s=240, what="a previous run's namespaces to finish terminating")
        taken = [n for n in names if namespace_exists(self.core, n)]
        if taken:
            pytest.skip(f"namespaces {taken} already exist on this cluster (another sync is using them)")

    def created(self, obj: Obj) -> None:
        if obj["kind"] == "Namespace":
            self.namespaces.append(obj["metadata"]["name"])
        elif obj["kind"] in CLUSTER_SCOPED_KINDS:
            self.cluster_objects.append(obj)

    def remove_all(self) -> None:
        for obj in self.cluster_objects:
            resource = self.dyn.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            try:
                resource.delete(name=obj["metadata"]["name"])
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in self.namespaces:
            try:
                self.core.delete_namespace(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        wait_until_empty(lambda: [n for n in self.namespaces if namespace_exists(self.core, n)],
                         timeout_s=300, what="the platform namespaces to be deleted")

    def _phase(self, name: str) -> str | None:
        try:
            return self.core.read_namespace(name).status.phase
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


@pytest.fixture()
def platform_cleanup(api_client: client.ApiClient) -> Iterator[PlatformCleanup]:
    cleanup = PlatformCleanup(api_client)
    cleanup.claim_namespaces()
    try:
        yield cleanup
    finally:
        cleanup.remove_all()


@pytest.fixture(scope="module")
def dyn(api_client: client.ApiClient) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client)


# --------------------------------------------------------------------------------------------
# Health, as the reconciler will judge it
# --------------------------------------------------------------------------------------------

def unhealthy_workloads(apps: client.AppsV1Api, objs: list[Obj]) -> list[str]:
    """Workloads not yet healthy: Deployments Available with every replica updated and available,
    StatefulSets with every replica Ready on the current revision, DaemonSets ready everywhere."""
    waiting = []
    for obj in objs:
        name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
        if obj["kind"] == "Deployment":
            d = apps.read_namespaced_deployment_status(name, ns)
            available = any(c.type == "Available" and c.status == "True" for c in (d.status.conditions or []))
            want = d.spec.replicas or 0
            if not (available and (d.status.available_replicas or 0) == want and (d.status.updated_replicas or 0) == want):
                waiting.append(ident(obj))
        elif obj["kind"] == "StatefulSet":
            s = apps.read_namespaced_stateful_set_status(name, ns)
            want = s.spec.replicas or 0
            if (s.status.ready_replicas or 0) != want or s.status.current_revision != s.status.update_revision:
                waiting.append(ident(obj))
        elif obj["kind"] == "DaemonSet":
            ds = apps.read_namespaced_daemon_set_status(name, ns)
            if ds.status.desired_number_scheduled == 0 or \
                    (ds.status.number_ready or 0) != ds.status.desired_number_scheduled:
                waiting.append(ident(obj))
    return waiting


# --------------------------------------------------------------------------------------------
# Specifications
# --------------------------------------------------------------------------------------------

def test_the_api_server_accepts_every_prod_object_in_stack_order(
    dyn: dynamic.DynamicClient, platform_cleanup: PlatformCleanup
) -> None:
    """Server-side apply dry-run of prod, stack by stack. A dry-run of a namespaced object needs
    its namespace, so each stack's Namespace is applied for real first (and removed afterwards)."""
    accepted = 0
    for stack in STACKS:
        objs = apply_order(render("prod", stack))
        for namespace in (o for o in objs if o["kind"] == "Namespace"):
            apply(dyn, namespace, dry_run=False)
            platform_cleanup.created(namespace)
        for obj in objs:
            apply(dyn, obj, dry_run=obj["kind"] != "Namespace")
            accepted += 1
    assert accepted == sum(len(render("prod", s)) for s in STACKS)


def test_dev_platform_becomes_healthy_on_the_devcluster_stack_by_stack(
    api_client: client.ApiClient, dyn: dynamic.DynamicClient, platform_cleanup: PlatformCleanup
) -> None:
    """Apply each dev stack for real, in dependency order, and wait for it to be healthy before
    the next one starts (as the reconciler does)."""
    apps = client.AppsV1Api(api_client)
    for stack in STACKS:
        objs = apply_order(render("dev", stack))
        for obj in objs:
            apply(dyn, obj, dry_run=False)
            platform_cleanup.created(obj)
        wait_until_empty(lambda objs=objs: unhealthy_workloads(apps, objs),
                         timeout_s=300, what=f"the dev {stack} stack to become healthy")
