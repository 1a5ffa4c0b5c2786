"""Fixtures that put a test module on a control plane of its own, a one-node devcluster started for the
module: `kubeconfig, api_client = private_cluster.kubeconfig, private_cluster.api_client` in a module
overrides the session's for every test in it. For tests that break the whole control plane (restart
etcd or the API server, register an aggregated API that is down): done to the session's, that would
break the tests other workers run beside them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client

from devcluster.cluster import temporary
from reconciler.kube.cluster import new_api_client


@pytest.fixture(scope="module")
def kubeconfig() -> Iterator[Path]:
    with temporary(nodes=1, prefix="private-") as path:
        yield path


@pytest.fixture(scope="module")
def api_client(kubeconfig: Path) -> client.ApiClient:
    return new_api_client(kubeconfig)
