"""The environment's key for the hashes its inventory records: Secret `reconciler-<env>-key` beside the
inventory ConfigMap (in `healthflow-system`).

Why a key: a stack's record keeps, per object, a hash of what Git wanted (a changed hash is a Git change,
an unchanged one with a live difference is drift). Hashes of Secrets' values, unkeyed, would let anyone who
may read the ConfigMap test guesses of those values; HMAC with a key only the reconciler reads does not.
"""

from __future__ import annotations

import base64
import secrets

from reconciler.kube.cluster import ApiError, Cluster
from reconciler.pipeline.ownership import MANAGED_BY, MANAGED_BY_LABEL


def hash_key_secret(env: str) -> str:
    """The name of the environment's hash-key Secret."""
    return f"reconciler-{env}-key"


def read_hash_key(cluster: Cluster, namespace: str, env: str, create: bool) -> tuple[bytes, bool]:
    """(the key, whether its Secret existed when read). Made on first use when `create`; b'' when it does not
    exist and may not be created (a plan before the first sync)."""
    name = hash_key_secret(env)
    live = cluster.get("v1", "Secret", namespace, name)
    existed = live is not None
    if live is None and create:
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {MANAGED_BY_LABEL: MANAGED_BY, "reconciler.healthflow.io/env": env}},
                "data": {"key": base64.b64encode(secrets.token_bytes(32)).decode()}}
        try:
            live = cluster.create(body)
        except ApiError as exc:
            if exc.status != 409:
                raise
            live = cluster.get("v1", "Secret", namespace, name)
    return base64.b64decode(((live or {}).get("data") or {}).get("key", "")), existed
