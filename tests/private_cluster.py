"""Fixtures that put a test module on a control plane of its own: `from private_cluster import
api_client, kubeconfig` in a module overrides the session's for every test in it. For tests that break
the whole control plane (restart etcd or the API server, register an aggregated API that is down),
which would break the tests other workers run beside them on the session's."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from reconciler.kube.cluster import new_api_client


@pytest.fixture(scope="module")
def kubeconfig(private_kubeconfig: Path) -> Path:
    return private_kubeconfig


@pytest.fixture(scope="module")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return new_api_client(kubeconfig)
