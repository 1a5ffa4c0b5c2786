"""May this identity do that? The API server's own answer (SelfSubjectAccessReview), remembered a while.

A shared watch reads objects as the daemon; before it answers a stack's LIST from what it holds, it asks
whether the stack's account could have made that LIST itself, so the cache never shows a stack what its
RBAC hides. The review is made as the account (impersonated), so it is RBAC's answer, not ours; answers
are kept `ttl_s` (a Role edited now is seen within that time, as a watch's relist would see it).
"""

from __future__ import annotations

import threading
import time

from reconciler.errors import ClusterError
from reconciler.kube.cluster import Cluster, impersonating
from reconciler.logs import get_logger
from reconciler.objects import group_of

log = get_logger("reconciler.kube.access")

REVIEW_API = "authorization.k8s.io/v1"


class AccessCheck:
    """Answers `allowed(user, api_version, kind, namespace, verb)` for one API server."""

    def __init__(self, cluster: Cluster, ttl_s: float = 300.0) -> None:
        self.cluster = cluster
        self.ttl_s = ttl_s
        self._answers: dict[tuple[str, str, str, str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()

    def allowed(self, user: str | None, api_version: str, kind: str, namespace: str, verb: str) -> bool:
        """Whether `user` (None: the identity of `cluster` itself) may `verb` this kind in `namespace` ("" for
        every namespace, or a cluster-scoped kind). A failed review answers no and is asked again next time."""
        key = (user or "", api_version, kind, namespace, verb)
        with self._lock:
            answer = self._answers.get(key)
        if answer is not None and time.monotonic() - answer[1] < self.ttl_s:
            return answer[0]
        try:
            allowed = self._review(user, api_version, kind, namespace, verb)
        except ClusterError as exc:
            log.warning("access review failed", user=user or "(own)", kind=kind, namespace=namespace, verb=verb,
                        error=str(exc))
            return False
        with self._lock:
            self._answers[key] = (allowed, time.monotonic())
        return allowed

    def _review(self, user: str | None, api_version: str, kind: str, namespace: str, verb: str) -> bool:
        resource = self.cluster.resource(api_version, kind)
        attributes = {"verb": verb, "group": group_of(api_version), "resource": resource.plural,
                      **({"namespace": namespace} if namespace and resource.namespaced else {})}
        review = impersonating(self.cluster, user).create({
            "apiVersion": REVIEW_API, "kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": attributes}})
        return bool((review.get("status") or {}).get("allowed"))
