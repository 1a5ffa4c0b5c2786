"""What the reconciler keeps in the cluster gives nothing away."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client

from reconciler.pipeline.diff import desired_hash
from scenario import Scenario

pytestmark = pytest.mark.cluster


def test_the_inventory_stores_no_unkeyed_hash_of_a_secret(scenario: Scenario, api_client: client.ApiClient) -> None:
    ns = scenario.namespace
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
              "stringData": {"password": "guessable"}}
    scenario.stack("app", [secret])
    scenario.commit("a secret")
    scenario.run("sync")
    core = client.CoreV1Api(api_client)
    inventory = core.read_namespaced_config_map(f"reconciler-{scenario.name}", "healthflow-system").data
    [(oid, stored)] = json.loads(inventory["stack.app.json"])["objects"].items()
    key = base64.b64decode(core.read_namespaced_secret(f"reconciler-{scenario.name}-key", "healthflow-system").data["key"])
    labels = scenario.live("secret", "creds")["metadata"]["labels"]
    # what anyone who can read the repository and this ConfigMap could rebuild and hash to test a guess:
    guess = {**secret, "metadata": {**secret["metadata"], "labels": labels,
                                    "annotations": {"reconciler.healthflow.io/owner": f"{scenario.name}/app"}}}

    assert oid.endswith(f"/Secret/{ns}/creds") and len(key) == 32
    assert stored != desired_hash(guess)
    assert stored == desired_hash(guess, key)  # it is the keyed hash of exactly that manifest
