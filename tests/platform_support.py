"""The HealthFlow platform in tests: its stacks and namespaces (docs/CONTRACT.md), and a cleanup
that lets a test own the hf-* namespaces while it runs and removes what it created afterwards."""

from __future__ import annotations

from typing import Callable

import pytest
from kubernetes import client, dynamic
from kubernetes.client.rest import ApiException

from helpers import wait_for

Obj = dict

# docs/CONTRACT.md, "Stacks, namespaces, order" (in dependency order).
STACKS: tuple[str, ...] = ("gateway", "discovery", "monitoring", "data", "application")
NAMESPACES: dict[str, str] = {
    "gateway": "hf-gateway",
    "discovery": "hf-discovery",
    "monitoring": "hf-monitoring",
    "data": "hf-data",
    "application": "hf-app",
}
CLUSTER_SCOPED_KINDS = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass"})


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
                continue
            self._hurry(name)
        wait_until_empty(lambda: [n for n in self.namespaces if namespace_exists(self.core, n)],
                         timeout_s=300, what="the platform namespaces to be deleted")

    def _hurry(self, name: str) -> None:
        """What keeps a platform namespace Terminating for 13-21 s is not the cluster's work: the namespace
        controller deletes pods with their 30 s grace period and looks again after half of it (kwok pods stop
        at once), and a claim stays until the PVC protection controller sees its pods gone. Terminating, the
        namespace takes nothing new, so the pods go now, the claims (whose pods are gone) lose that finalizer,
        and an update makes the namespace controller look again."""
        try:
            self.core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
            self.core.delete_collection_namespaced_persistent_volume_claim(name)
            for claim in self.core.list_namespaced_persistent_volume_claim(name).items:
                self.core.patch_namespaced_persistent_volume_claim(claim.metadata.name, name,
                                                                   {"metadata": {"finalizers": None}})
            self.core.patch_namespace(name, {"metadata": {"annotations": {"healthflow.io/test-cleanup": "hurried"}}})
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _phase(self, name: str) -> str | None:
        try:
            return self.core.read_namespace(name).status.phase
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
