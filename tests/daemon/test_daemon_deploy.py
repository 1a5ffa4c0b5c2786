"""The daemon's deployment manifests (deploy/) are accepted by a real API server, and the Deployment
runs two replicas of a non-root, probed container. Server-side dry run: nothing is created.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.cluster
REPO_ROOT = Path(__file__).resolve().parents[2]


def _render() -> list[dict]:
    kustomize = shutil.which("kustomize")
    command = [kustomize, "build"] if kustomize else ["kubectl", "kustomize"]
    out = subprocess.run([*command, str(REPO_ROOT / "deploy")], check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.xdist_group("platform")  # its ClusterRoles are the least-privilege tests', which apply and delete them
def test_the_deploy_manifests_pass_a_server_side_dry_run(kubeconfig: Path, namespace: str) -> None:
    objects = [o for o in _render() if o["kind"] != "Namespace"]
    for obj in objects:
        if obj["metadata"].get("namespace"):  # healthflow-system, and the stack namespaces of the stack accounts
            obj["metadata"]["namespace"] = namespace
        for subject in obj.get("subjects", []):
            subject["namespace"] = namespace
    result = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "apply", "--dry-run=server", "-f", "-"],
                            input=yaml.safe_dump_all(objects), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


def test_the_deployment_runs_two_non_root_replicas_with_probes_and_secrets_from_files() -> None:
    [deployment] = [o for o in _render() if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert env["RECONCILER_API_TOKEN_FILE"].startswith("/var/run/secrets/")
    assert env["RECONCILER_READ_TOKEN_FILE"].startswith("/var/run/secrets/")  # it listens off loopback
    assert not any("TOKEN" in name and not name.endswith("_FILE") for name in env)
