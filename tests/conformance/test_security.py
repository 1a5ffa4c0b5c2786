"""What the reconciler keeps in the cluster gives nothing away."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest
from kubernetes import client

from reconciler.pipeline.diff import desired_hash
from scenario import Scenario, configmap
from sops_support import stop_agent

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


class Signer:
    """A real signing key (OpenPGP via gpg, or SSH via ssh-keygen) whose public half can be trusted."""

    def __init__(self, root: Path, kind: str, gnupg_home: Path) -> None:
        root.mkdir(parents=True)
        self.env = {**os.environ, "GNUPGHOME": str(gnupg_home)}
        if kind == "gpg":
            subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Signer <signer@example.test>",
                            "ed25519", "sign", "never"], env=self.env, check=True, capture_output=True)
            listing = subprocess.run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=self.env,
                                     check=True, capture_output=True, text=True).stdout
            self.key = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
            self.public = subprocess.run(["gpg", "--batch", "--armor", "--export", self.key], env=self.env,
                                         check=True, capture_output=True, text=True).stdout
            self.config = ["-c", f"user.signingkey={self.key}", "-c", "gpg.format=openpgp"]
            self.suffix = ".asc"
        else:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(root / "key")],
                           check=True, capture_output=True)
            self.public = (root / "key.pub").read_text()
            self.config = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={root / 'key.pub'}"]
            self.suffix = ".pub"

    def trust_in(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}{self.suffix}").write_text(self.public)

    def commit(self, scenario: Scenario, message: str) -> str:
        repo = scenario.repo.repo
        repo.git.add(A=True)
        subprocess.run(["git", *self.config, "commit", "-q", "-S", "-m", message], cwd=repo.working_tree_dir,
                       env=self.env, check=True, capture_output=True)
        repo.git.push("origin", "main")
        return repo.head.commit.hexsha


@pytest.fixture()
def new_signer(tmp_path: Path) -> Iterator[Callable[[str, str], Signer]]:
    """Makes signers. Their gpg homes are short folders of their own: gpg's agent socket path must fit in
    107 bytes, which a folder under a parallel worker's tmp_path need not. Removed with their agents after."""
    homes: list[Path] = []

    def make(name: str, kind: str) -> Signer:
        homes.append(Path(tempfile.mkdtemp(prefix="gpg-")))
        return Signer(tmp_path / name, kind, homes[-1])

    yield make
    for home in homes:
        stop_agent(home)
        shutil.rmtree(home, ignore_errors=True)


def _verified(scenario: Scenario, tmp_path: Path, *trusted: Signer) -> None:
    for index, signer in enumerate(trusted):
        signer.trust_in(tmp_path / "trusted-keys", f"signer-{index}")
    scenario.source_options["verify"] = {"mode": "head", "keys": str(tmp_path / "trusted-keys")}


@pytest.mark.parametrize("kind", ["gpg", "ssh"])
def test_a_head_commit_signed_by_a_trusted_key_is_applied(scenario: Scenario, tmp_path: Path, kind: str,
                                                          new_signer: Callable[[str, str], Signer]) -> None:
    signer = new_signer(f"signer-{kind}", kind)
    _verified(scenario, tmp_path, signer)
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "signed"})])

    sha = signer.commit(scenario, "signed change")
    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 1, sync.out + sync.err
    assert sync.json["commit"]["sha"] == sha
    assert scenario.live("configmap", "settings")["data"] == {"v": "signed"}


def test_an_unsigned_head_commit_is_refused_and_the_last_good_state_stays(
        scenario: Scenario, tmp_path: Path, new_signer: Callable[[str, str], Signer]) -> None:
    signer = new_signer("signer", "ssh")
    _verified(scenario, tmp_path, signer)
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "signed"})])
    signer.commit(scenario, "signed")
    scenario.run("sync")
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "unsigned"})])
    unsigned = scenario.commit("sneaked in without a signature")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    assert f"commit {unsigned[:10]}" in sync.json["error"] and "the commit is unsigned" in sync.json["error"]
    assert sync.json["stacks"] == []
    assert scenario.live("configmap", "settings")["data"] == {"v": "signed"}


@pytest.mark.parametrize("kind", ["gpg", "ssh"])
def test_a_head_commit_signed_by_an_unknown_key_is_refused(scenario: Scenario, tmp_path: Path, kind: str,
                                                           new_signer: Callable[[str, str], Signer]) -> None:
    trusted, stranger = new_signer("trusted", kind), new_signer("stranger", kind)
    _verified(scenario, tmp_path, trusted)
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "from a stranger"})])
    sha = stranger.commit(scenario, "signed, but not by anyone we trust")

    sync = scenario.run("sync", "-o", "json")

    assert sync.code == 2
    assert f"commit {sha[:10]}" in sync.json["error"] and "signed by an unknown key" in sync.json["error"], sync.json
    assert scenario.live("configmap", "settings") is None


@pytest.fixture()
def deployer(scenario: Scenario, api_client: client.ApiClient) -> str:
    """A ServiceAccount that may edit its own namespace (the test's) and nothing else."""
    ns = scenario.namespace
    client.CoreV1Api(api_client).create_namespaced_service_account(ns, {"metadata": {"name": "deployer"}})
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(ns, {
        "metadata": {"name": "deployer-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]})
    return f"{ns}/deployer"


def test_a_stack_applied_as_its_service_account_writes_where_the_account_may(scenario: Scenario, deployer: str) -> None:
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "1"})], serviceAccountName=deployer)
    scenario.commit("applied as the deployer")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}


def test_a_stack_whose_service_account_may_not_touch_another_namespace_fails_cleanly_there(
        scenario: Scenario, deployer: str, api_client: client.ApiClient) -> None:
    other = f"{scenario.namespace[:40]}-other"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": other}})
    try:
        scenario.stack("app", [configmap("mine", scenario.namespace, {"v": "1"}), configmap("theirs", other, {"v": "1"})],
                       serviceAccountName=deployer)
        scenario.commit("reaches into another namespace")

        sync = scenario.run("sync", "-o", "json")

        assert sync.code == 2
        reason = sync.json["stacks"][0]["reason"]
        assert f"system:serviceaccount:{scenario.namespace}:deployer" in reason and "forbidden" in reason, reason
        assert scenario.live("configmap", "mine") is None  # nothing of the stack was applied
        assert scenario.live("configmap", "theirs", namespace=other) is None
    finally:
        client.CoreV1Api(api_client).delete_namespace(other)


def test_trusted_keys_can_come_from_a_secret(scenario: Scenario, api_client: client.ApiClient,
                                             new_signer: Callable[[str, str], Signer]) -> None:
    signer = new_signer("signer", "ssh")
    client.CoreV1Api(api_client).create_namespaced_secret(scenario.namespace, {
        "metadata": {"name": "trusted-keys"},
        "data": {"ci.pub": base64.b64encode(signer.public.encode()).decode()}})
    scenario.source_options["verify"] = {"mode": "head", "keys": f"secret:{scenario.namespace}/trusted-keys"}
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "signed"})])
    signer.commit(scenario, "signed")
    scenario.stack("app", [configmap("settings", scenario.namespace, {"v": "unsigned"})])

    signed = scenario.run("sync")
    unsigned_sha = scenario.commit("unsigned")
    unsigned = scenario.run("sync", "-o", "json")

    assert signed.code == 1, signed.out + signed.err
    assert unsigned.code == 2 and f"commit {unsigned_sha[:10]}" in unsigned.json["error"]
    assert scenario.live("configmap", "settings")["data"] == {"v": "signed"}


@pytest.mark.parametrize("command", [("preview", "--revision"), ("rollback", "--to")], ids=["preview", "rollback"])
def test_a_revision_that_looks_like_a_git_option_is_refused_and_never_run(
        scenario: Scenario, tmp_path: Path, command: tuple[str, str]) -> None:
    scenario.source_options["url"] = f"file://{scenario.repo.url}"  # a URL, fetched like a remote host
    scenario.stack("app", [configmap("settings", scenario.namespace, {"a": "1"})])
    scenario.commit("settings")
    scenario.run("sync")
    marker = tmp_path / "pwned"

    refused = scenario.run(command[0], command[1], f"--upload-pack=touch {marker}")

    assert not marker.exists(), "git ran the revision as an option"
    assert refused.code == 2 and "is not a branch, tag or commit name" in refused.err, refused.out + refused.err
