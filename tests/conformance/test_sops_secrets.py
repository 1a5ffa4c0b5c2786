"""Secrets kept in Git encrypted with SOPS are applied decrypted, with keys the environment names, and
their values exist only in memory: never in the render cache, the Git mirror, or any output."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from manifests import configmap
from scenario import Scenario
from sops_support import AgeKey, age_key, encrypt_file, pgp_key, secret, stop_agent

pytestmark = pytest.mark.cluster

PASSWORD = "s3cret-only-in-memory-7f2c"


def _encrypted_stack(scenario: Scenario, key: AgeKey | None = None, pgp=None, password: str = PASSWORD,
                     extra: list[dict] | None = None) -> None:
    """`stacks/app`: an encrypted Secret (no namespace: kustomize adds it, and a label) and plain objects."""
    repo = scenario.repo
    repo.write("stacks/app/secret.yaml", secret("db", None, password=password, user="app"))
    encrypt_file(repo.work_path / "stacks/app/secret.yaml", age=key, pgp=pgp)
    repo.write("stacks/app/objects.yaml", extra if extra is not None else [configmap("settings", None, {"v": "1"})])
    repo.write("stacks/app/kustomization.yaml", {"namespace": scenario.namespace, "labels": [{"pairs": {"team": "db"}}],
                                                 "resources": ["secret.yaml", "objects.yaml"]})
    scenario.stacks["app"] = {"name": "app", "path": "stacks/app"}


def _keys_in_a_kubernetes_secret(scenario: Scenario, key: AgeKey) -> None:
    scenario.kubectl("-n", scenario.namespace, "create", "secret", "generic", "sops-keys",
                     f"--from-literal=identity.agekey={key.identity}")
    scenario.env_extra["decryption"] = {"provider": "sops",
                                        "secretRef": {"name": "sops-keys", "namespace": scenario.namespace}}
    scenario.write_env()


def _live_secret(scenario: Scenario) -> dict[str, str]:
    live = scenario.live("secret", "db")
    return {k: base64.b64decode(v).decode() for k, v in (live or {}).get("data", {}).items()}


def test_an_age_encrypted_secret_is_applied_decrypted_with_a_key_from_a_kubernetes_secret(scenario: Scenario,
                                                                                           tmp_path: Path) -> None:
    key = age_key(tmp_path / "keys")
    _encrypted_stack(scenario, key)
    _keys_in_a_kubernetes_secret(scenario, key)
    scenario.commit("an encrypted Secret")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert _live_secret(scenario) == {"password": PASSWORD, "user": "app"}
    live = scenario.live("secret", "db")
    assert live["metadata"]["labels"]["team"] == "db" and "sops" not in live
    assert scenario.run("plan").code == 0


def test_a_pgp_encrypted_secret_is_applied_with_a_key_from_a_key_file(scenario: Scenario, tmp_path: Path,
                                                                      request: pytest.FixtureRequest) -> None:
    pgp = pgp_key(tmp_path / "gnupg")
    request.addfinalizer(lambda: stop_agent(pgp.home))
    _encrypted_stack(scenario, pgp=pgp)
    key_file = tmp_path / "deploy.asc"
    key_file.write_text(pgp.armored_secret)
    scenario.env_extra["decryption"] = {"provider": "sops", "keyFile": str(key_file)}
    scenario.write_env()
    scenario.commit("a PGP-encrypted Secret")

    sync = scenario.run("sync")

    assert sync.code == 1, sync.out + sync.err
    assert _live_secret(scenario)["password"] == PASSWORD


def test_decrypted_values_appear_in_no_output_and_no_file(scenario: Scenario, tmp_path: Path) -> None:
    key = age_key(tmp_path / "keys")
    _encrypted_stack(scenario, key)
    _keys_in_a_kubernetes_secret(scenario, key)
    scenario.commit("an encrypted Secret")
    outputs = [scenario.run("plan", "-o", "json"), scenario.run("render"), scenario.run("sync", "-o", "json")]
    _encrypted_stack(scenario, key, password="a-new-password-4d1e")
    scenario.commit("rotate the password")
    outputs += [scenario.run("plan", "-o", "json"), scenario.run("plan", "-v"), scenario.run("sync")]
    scenario.kubectl("-n", scenario.namespace, "patch", "secret", "db", "--type=merge",
                     "-p", '{"stringData": {"password": "typed-by-hand-9a8b"}}')
    outputs += [scenario.run("drift", "-o", "json"), scenario.run("drift")]

    assert _live_secret(scenario)["password"] == "typed-by-hand-9a8b"
    for plaintext in (PASSWORD, "a-new-password-4d1e", "typed-by-hand-9a8b"):
        encoded = base64.b64encode(plaintext.encode()).decode()
        for run in outputs:
            assert plaintext not in run.out + run.err and encoded not in run.out + run.err
        for path in scenario.cache_dir.rglob("*"):
            if path.is_file():
                assert plaintext.encode() not in path.read_bytes(), path


def test_a_file_encrypted_for_another_key_fails_its_stack_naming_the_file_and_changes_nothing(
        scenario: Scenario, tmp_path: Path) -> None:
    key, stranger = age_key(tmp_path / "keys"), age_key(tmp_path / "keys")
    _encrypted_stack(scenario, key, extra=[configmap("settings", None, {"v": "1"}), configmap("old", None, {"v": "1"})])
    _keys_in_a_kubernetes_secret(scenario, key)
    scenario.commit("an encrypted Secret")
    assert scenario.run("sync").code == 1
    _encrypted_stack(scenario, stranger, password="for-someone-else", extra=[configmap("settings", None, {"v": "2"})])
    scenario.commit("encrypted for another key, settings changed, old removed")

    sync = scenario.run("sync")

    assert sync.code == 2, sync.out + sync.err
    assert "cannot decrypt stacks/app/secret.yaml" in sync.out + sync.err
    assert "none of the environment's keys can decrypt it" in sync.out + sync.err
    assert scenario.live("configmap", "settings")["data"] == {"v": "1"}
    assert scenario.live("configmap", "old") is not None
    assert _live_secret(scenario)["password"] == PASSWORD


def test_a_tampered_encrypted_file_fails_its_stack_with_a_mac_mismatch(scenario: Scenario, tmp_path: Path) -> None:
    key = age_key(tmp_path / "keys")
    _encrypted_stack(scenario, key)
    _keys_in_a_kubernetes_secret(scenario, key)
    path = scenario.repo.work_path / "stacks/app/secret.yaml"
    tampered = yaml.safe_load(path.read_text())
    tampered["type"] = "kubernetes.io/basic-auth"
    path.write_text(yaml.safe_dump(tampered))
    scenario.commit("a changed encrypted file")

    sync = scenario.run("sync")

    assert sync.code == 2, sync.out + sync.err
    assert "stacks/app/secret.yaml" in sync.out and "MAC does not match" in sync.out
    assert scenario.live("secret", "db") is None and scenario.live("configmap", "settings") is None


def test_an_encrypted_secret_in_an_environment_without_decryption_is_a_clear_error(scenario: Scenario,
                                                                                    tmp_path: Path) -> None:
    _encrypted_stack(scenario, age_key(tmp_path / "keys"))
    scenario.write_env()
    scenario.commit("an encrypted Secret, no keys")

    sync = scenario.run("sync")

    assert sync.code == 2, sync.out + sync.err
    assert "is SOPS-encrypted" in sync.out and "no `decryption` section" in sync.out
    assert scenario.live("secret", "db") is None
