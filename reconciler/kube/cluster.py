"""The only module that talks to the Kubernetes API.

Objects travel as plain dicts over raw REST calls (kept-alive connections parsed by llhttp, `kube.transport`;
`ApiClient.call_api` where that module leaves a configuration to the library), so any kind the server
serves, CRDs included, works the same way, and the typed client's client-side validation never
hides what the API server itself would say. Every request is counted by verb: a pass reports how
many it made, which keeps the steady-state cost (one LIST per kind and namespace) honest.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from reconciler.errors import ClusterError
from reconciler.kube.retry import API_RETRY, retry_after, retryable
from reconciler.kube.transport import transport_of
from reconciler.retrying import retry_call

FIELD_MANAGER = "healthflow-reconciler"
_TIMEOUT = (5, 60)
CONNECTION_POOL_SIZE = 256
"""Idle connections kept per client: at least the requests one stack sends at once, and in the daemon (one
client per cluster, shared by its environments) room for the watches too; a client opens only what it uses."""


class _NoRetryAfterTimeout(urllib3.Retry):
    """urllib3's retries, except that a request whose answer stopped coming (a read timeout) is not sent
    again: with urllib3's default, a GET, PUT or DELETE to a frozen API server took four request timeouts
    (a lease renewal too), and a stalled watch four stall times. A connection the server closed (which
    urllib3 also counts as a read error) is still retried: without that, requests right after a CRD was
    installed failed (five tests did, once). The caller (a pass, the next round, the live cache's loop)
    goes on after the timeout as after any error; 429 and 5xx answers are `kube.retry`'s."""

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> urllib3.Retry:
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


CONNECTION_RETRIES = _NoRetryAfterTimeout(total=3)


class ApiError(ClusterError):
    """The API server answered with an error status; `status` and `reason` say which."""

    def __init__(self, message: str, status: int, reason: str = "", body: dict | None = None, fix: str | None = None):
        super().__init__(message, fix=fix)
        self.status = status
        self.reason = reason
        self.body = body or {}

    @property
    def causes(self) -> list[str]:
        details = self.body.get("details") or {}
        return [c.get("message", "") for c in details.get("causes") or []]


class _Retryable(Exception):
    """An error answer on its way to the retry decision; `_call` raises `error` when it is final."""

    def __init__(self, error: ApiError, headers: dict[str, str]) -> None:
        super().__init__(str(error))
        self.error, self.headers = error, headers


_VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


class UnknownKind(ClusterError):
    """The cluster does not serve this apiVersion/kind (a missing CRD, or a typo)."""


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        suffix = f"/{name}" if name else ""
        return f"{prefix}{scope}/{self.plural}{suffix}"


def new_api_client(kubeconfig: Path | str | None = None, context: str | None = None,
                   in_cluster: bool = False) -> client.ApiClient:
    """A client whose connection pool keeps as many connections as requests run at once (a stack's dry runs,
    the daemon's watches): with the library's default (5 per core), each request beyond it opened a new TLS
    connection and threw it away after, work for the API server and for us."""
    configuration = client.Configuration()
    configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
    configuration.retries = CONNECTION_RETRIES
    try:
        if in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            config.load_kube_config(config_file=str(kubeconfig) if kubeconfig else None, context=context,
                                    client_configuration=configuration)
        return client.ApiClient(configuration)
    except (config.ConfigException, OSError) as exc:
        raise ClusterError(f"cannot load Kubernetes credentials ({kubeconfig or 'KUBECONFIG/~/.kube/config'}): {exc}",
                           fix="set cluster.kubeconfig in the environment file, or KUBECONFIG") from exc


class Cluster:
    """A Kubernetes API server, spoken to with dicts; thread-safe; counts its requests."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self._resources: dict[str, dict[str, Resource]] = {}
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.cache: Any = None  # a kube.livecache.LiveCache, attached by the daemon
        self.user: str | None = None  # impersonated (Impersonate-User) by every request of this view
        self.retry = API_RETRY
        self.request_timeout: tuple[float, float] = _TIMEOUT  # (connect, read) seconds per request

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def count(self, verb: str) -> None:
        with self._lock:
            self._counts[verb] += 1

    def request_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def _call(self, method: str, path: str, *, query: list[tuple[str, Any]] | None = None, body: Any = None,
              content_type: str = "application/json", verb: str | None = None, answer: bool = True) -> dict:
        """One API request; 429 and 5xx answers are asked again as `kube.retry` says (Retry-After honoured).
        `answer=False`: {} instead of the decoded answer."""

        def once() -> dict:
            self.count(verb or _VERBS[method])
            return send(self, method, path, query, body, content_type, answer)

        try:
            return retry_call(once, self.retry, what=f"{method} {path}", quiet=True,
                              retryable=lambda e: isinstance(e, _Retryable) and retryable(e.error.status, e.headers),
                              delay=lambda e: retry_after(e.headers) if isinstance(e, _Retryable) else None,
                              on_failure=lambda _e: self.count("retry"))
        except _Retryable as answer:
            raise answer.error from None

    def resource(self, api_version: str, kind: str) -> Resource:
        """Map apiVersion/kind to its REST resource; discovery runs once per group-version."""
        with self._lock:
            known = self._resources.get(api_version)
        if known is None:
            known = self._discover(api_version)
        if kind not in known:
            raise UnknownKind(f"the cluster does not serve {kind} in {api_version}",
                              fix="install the CRD that defines it (in an earlier stack), or fix apiVersion/kind")
        return known[kind]

    def discovery_document(self, path: str) -> dict:
        """A discovery document as the server gives it (`/apis`, `/apis/<group>/<version>`)."""
        return self._call("GET", path, verb="discovery")

    def forget(self, api_version: str) -> None:
        """Drop cached discovery (after applying a CRD, its kinds appear)."""
        with self._lock:
            self._resources.pop(api_version, None)

    def _discover(self, api_version: str) -> dict[str, Resource]:
        found = discover(self, api_version)
        with self._lock:
            self._resources[api_version] = found
        return found

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str = "") -> list[dict]:
        """Objects of a kind; served by the live cache, when one is attached and watches exactly this."""
        if self.cache is not None:
            cached = self.cache.lookup(api_version, kind, namespace or "", label_selector, self.user)
            if cached is not None:
                return cached
        return self.list_with_version(api_version, kind, namespace, label_selector)[0]

    def list_with_version(self, api_version: str, kind: str, namespace: str | None = None,
                          label_selector: str = "") -> tuple[list[dict], str]:
        """A LIST from the API server, and the resourceVersion a watch continues from."""
        resource = self.resource(api_version, kind)
        query = [("labelSelector", label_selector)] if label_selector else []
        result = self._call("GET", resource.path(namespace if resource.namespaced else None), query=query, verb="list")
        items = result.get("items", [])
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, str((result.get("metadata") or {}).get("resourceVersion") or "")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict | None:
        resource = self.resource(api_version, kind)
        try:
            return self._call("GET", resource.path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def apply(self, manifest: dict, *, dry_run: bool = False, force: bool = False,
              field_manager: str = FIELD_MANAGER, body: bytes | None = None, answer: bool = True) -> dict:
        """Server-side apply: the server merges, defaults and validates; conflicts come back as 409.
        `body`: the manifest already encoded as JSON (the caller's memo). Either way it is sent as bytes,
        which the client passes on untouched (a dict it copies key by key before encoding it). `answer=False`
        returns {} without decoding the answer (a cold sync reads none: 7% of its client CPU a request),
        except what the live cache notes of a write."""
        api_version, kind = manifest["apiVersion"], manifest["kind"]
        resource = self.resource(api_version, kind)
        meta = manifest.get("metadata") or {}
        query: list[tuple[str, Any]] = [("fieldManager", field_manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        path = resource.path(meta.get("namespace"), meta["name"])
        encoded = body if body is not None else json.dumps(manifest, separators=(",", ":")).encode()
        noted = self.cache is not None and not dry_run
        result = self._call("PATCH", path, query=query, body=encoded, content_type="application/apply-patch+yaml",
                            answer=answer or noted)
        if noted:  # the cache must not answer with an older state than this
            written = result.get("metadata") or {}
            self.cache.note_write(api_version, kind, meta.get("namespace") or "", meta["name"],
                                  written.get("resourceVersion"), written.get("labels"))
        return result

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        resource = self.resource(api_version, kind)
        try:
            self._call("DELETE", resource.path(namespace, name), body={"propagationPolicy": "Background"})
            return True
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise

    def create(self, manifest: dict) -> dict:
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        namespace = (manifest.get("metadata") or {}).get("namespace")
        return self._call("POST", resource.path(namespace), body=manifest)

    def replace(self, manifest: dict) -> dict:
        """PUT: with metadata.resourceVersion set, a 409 says someone else wrote first."""
        resource = self.resource(manifest["apiVersion"], manifest["kind"])
        meta = manifest.get("metadata") or {}
        return self._call("PUT", resource.path(meta.get("namespace"), meta["name"]), body=manifest)

    def json_patch(self, api_version: str, kind: str, namespace: str, name: str, operations: list[dict]) -> dict:
        resource = self.resource(api_version, kind)
        return self._call("PATCH", resource.path(namespace, name), body=operations,
                          content_type="application/json-patch+json")

    def merge_patch(self, api_version: str, kind: str, namespace: str, name: str, patch: dict) -> dict:
        resource = self.resource(api_version, kind)
        return self._call("PATCH", resource.path(namespace, name), body=patch,
                          content_type="application/merge-patch+json")


def send(cluster: Cluster, method: str, path: str, query: list[tuple[str, Any]] | None, body: Any,
         content_type: str, answer: bool = True) -> dict:
    """One HTTP request as `cluster` (its client, impersonated user and timeout), through the client's
    `transport` (kept-alive connections) or, for a configuration it leaves to the library,
    `call_api`; an error answer is raised as `_Retryable` for `Cluster._call` to retry or give up on."""
    headers = {"Accept": "application/json", "Content-Type": content_type,
               **({"Impersonate-User": cluster.user} if cluster.user else {})}
    transport = transport_of(cluster.api_client, CONNECTION_POOL_SIZE)
    try:
        if transport is not None:
            reply = transport.request(method, path, query or [], body, headers, cluster.request_timeout)
            status, reason, data, answer_headers = reply.status, reply.reason, reply.data, reply.headers
        else:
            status, reason, data, answer_headers = _call_api(cluster, method, path, query, body, headers)
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
        raise ClusterError(f"cannot reach the Kubernetes API at {cluster.server}: {exc.__class__.__name__}",
                           fix="check the cluster is up and the kubeconfig points at it") from exc
    if not 200 <= status <= 299:
        raise _Retryable(api_error(method, path, status, data, reason), answer_headers)
    return json.loads(data) if data and answer else {}


def _call_api(cluster: Cluster, method: str, path: str, query: list[tuple[str, Any]] | None, body: Any,
              headers: dict[str, str]) -> tuple[int, str | None, bytes, dict[str, str]]:
    """The request through the `kubernetes` client's own path (urllib3): status, reason, body, headers."""
    request = cluster.api_client.param_serialize(method, path, query_params=query or [], body=body,
                                                 header_params=headers, auth_settings=["BearerToken"])
    try:
        response = cluster.api_client.call_api(*request, _request_timeout=cluster.request_timeout)
        response.read()
    except ApiException as exc:
        return int(exc.status or 0), exc.reason, exc.body, dict(exc.headers or {})
    return response.status, response.reason, response.data, dict(response.getheaders() or {})


def discover(cluster: Cluster, api_version: str) -> dict[str, Resource]:
    """The kinds a group-version serves (by kind), from its discovery document; {} when it is not served."""
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    try:
        listing = cluster.discovery_document(path)
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return {r["kind"]: Resource(api_version, r["kind"], r["name"], bool(r.get("namespaced")))
            for r in listing.get("resources", []) if "/" not in r["name"]}


def ensure_namespace(cluster: Cluster, name: str) -> None:
    """Create the namespace unless it exists (the reconciler's own namespace on a fresh cluster)."""
    if cluster.get("v1", "Namespace", "", name) is not None:
        return
    try:
        cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except ApiError as exc:
        if exc.status != 409:
            raise


def api_error(method: str, path: str, status: int, raw: bytes | str | None, http_reason: str | None) -> ApiError:
    try:
        body = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        body = {}
    reason = str(body.get("reason") or http_reason or "")
    message = body.get("message") or http_reason or "error"
    return ApiError(f"{method} {path}: {status} {reason}: {message}", status=status, reason=reason, body=body)


def impersonating(cluster: Cluster, user: str | None) -> Cluster:
    """A view of the same API server whose every request is made as `user` (a stack's service account):
    the API server's RBAC then decides what the stack may touch. Shares discovery, counts and cache."""
    if not user:
        return cluster
    view = Cluster.__new__(Cluster)
    view.__dict__.update(cluster.__dict__)
    view.user = user
    return view
