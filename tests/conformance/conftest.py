"""Conformance scenarios: each test is one promise a user relies on, checked end to end.

A scenario (scenario.py) is a small real Git repository, an environment file pointing at it, the
`reconciler` command run against the session's real API server, and the live objects read back
with kubectl. Objects live in the test's own namespace and the environment is named after it, so
scenarios never see each other's inventory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from scenario import Scenario


@pytest.fixture()
def scenario(tmp_path: Path, namespace: str, kubeconfig: Path) -> Scenario:
    return Scenario(tmp_path, namespace, kubeconfig)


@pytest.fixture()
def group(scenario: Scenario) -> Iterator[str]:
    """A CRD group of this test's own; its CRD (widgets.<group>) is deleted afterwards."""
    name = f"{scenario.namespace}.conformance.test"
    yield name
    scenario.kubectl("delete", "crd", f"widgets.{name}", "--ignore-not-found", "--wait=false", check=False)
