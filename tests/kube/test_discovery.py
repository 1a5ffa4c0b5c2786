"""Finding labelled objects of every kind while CRDs come and go: a kind whose CRD was removed after
discovery listed it (another environment's, in the middle of the scan) holds nothing, and is no error."""

from __future__ import annotations

import pytest
from kubernetes import client

from reconciler.kube.cluster import Cluster
from reconciler.kube.discovery import find_labelled

pytestmark = pytest.mark.cluster


def test_a_kind_whose_crd_went_away_after_discovery_listed_it_holds_nothing(api_client: client.ApiClient,
                                                                             namespace: str) -> None:
    client.CoreV1Api(api_client).create_namespaced_config_map(
        namespace, {"metadata": {"name": "mine", "labels": {"scan.test/owner": namespace}}})
    kinds = [("gone.scan.test/v1", "Widget", True), ("v1", "ConfigMap", True)]  # as read before the CRD left

    found = find_labelled(Cluster(api_client), f"scan.test/owner={namespace}", {namespace}, kinds)

    assert [str(labelled.id) for labelled in found] == [f"core/ConfigMap/{namespace}/mine"]
