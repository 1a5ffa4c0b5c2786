"""The platform against a real API server (the devcluster): the API server accepts every prod
object (server-side apply, dry-run), and the dev platform, applied for real in stack order,
becomes healthy on the three kwok nodes.

Both tests own the hf-* namespaces (and the platform's few cluster-scoped objects) while they
run and remove what they created afterwards, so other tests see a clean cluster.
"""

from __future__ import annotations

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from reconciler.kube.cluster import Cluster
from reconciler.kube.health import unready
from reconciler.objects import K8sObject
from platform_support import PlatformCleanup, wait_until_empty
from test_platform_render import ORIGIN, STACKS, Obj, ident, render

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


@pytest.fixture(scope="module")
def dyn(api_client: client.ApiClient) -> dynamic.DynamicClient:
    return dynamic.DynamicClient(api_client)


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
    """Apply each dev stack for real, in dependency order, and wait until the reconciler's own health
    check (reconciler.kube.health) finds every object of it ready before the next one starts."""
    cluster = Cluster(api_client)
    for stack in STACKS:
        objs = apply_order(render("dev", stack))
        for obj in objs:
            apply(dyn, obj, dry_run=False)
            platform_cleanup.created(obj)
        desired = [K8sObject(for_apply(o), stack) for o in objs]
        wait_until_empty(lambda desired=desired: unready(cluster, desired),
                         timeout_s=300, what=f"the dev {stack} stack to become healthy")
