"""Bad input, generated: environment files, policy files, webhook payloads and manifests.

The promise under test is the same for each: whatever a user or a Git host sends, the answer is a
one-line error and exit code 2 (CLI), or a 4xx (HTTP), never a traceback and never a 5xx. Hypothesis
generates the inputs (structured YAML with the right keys and wrong values, and raw text); a failing
example is shrunk and printed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon_support import GITHUB_SECRET, GITLAB_TOKEN, CannedEngine, GitRepo, running_daemon, write_env
from reconciler.cli.main import main as reconciler_main
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings
from reconciler.daemon.webhooks import github_signature
from reconciler.errors import ReconcilerError
from reconciler.policy.config import load_policies

REPO_ROOT = Path(__file__).resolve().parents[2]
FUZZ = settings(max_examples=60, deadline=None, database=None,
                derandomize=bool(os.environ.get("CI")),  # CI runs the same examples every time; locally, new ones
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ENV_KEYS = ["name", "source", "url", "branch", "timeout", "verify", "keys", "stacks", "path", "dependsOn", "sync",
            "interval", "prune", "correctDrift", "waitForHealth", "healthTimeout", "policy", "directory", "mode",
            "cluster", "kubeconfig", "context", "serviceAccountName", "pruneNamespaces", "allowAdoption"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(["1h", "0s", "-5m", "..", "../..", "/etc", "stacks/app",
                                                           "a" * 300, "10x", "1e9h"]))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(ENV_KEYS) | st.text(max_size=8), inner, max_size=5)),
    max_leaves=25)
documents = st.one_of(
    yaml_values.map(lambda value: yaml.safe_dump(value)),
    st.text(max_size=300),
    st.integers(1, 3000).map(lambda depth: "stacks: " + "[" * depth + "]" * depth),
    st.integers(1, 3000).map(lambda depth: "a:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(depth))),
)


def _cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = reconciler_main(list(argv))
    return code, err.getvalue()


def _one_line_error(code: int, err: str) -> None:
    assert code in (0, 2), (code, err)
    if code == 2:
        assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert "Traceback" not in err


@FUZZ
@given(text=documents)
def test_any_environment_file_validates_or_fails_with_one_line_and_exit_2(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "env.yaml").write_text(text)
        _one_line_error(*_cli("validate", "--environments", folder))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_an_environment_file_of_arbitrary_bytes_fails_with_one_line_and_exit_2(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "env.yaml").write_bytes(raw)
        _one_line_error(*_cli("validate", "--environments", folder))


POLICY_KEYS = ["rules", "severity", "mode", "environments", "minReplicas", "exceptions", "stack", "rule", "kind",
               "name", "reason", "expires", "maxCpu", "maxMemory", "budget", "cpu", "memory", "dev", "prod"]
policy_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(POLICY_KEYS) | st.text(max_size=8), inner,
                                                 max_size=5)), max_leaves=25)


@FUZZ
@given(file=st.sampled_from(sorted(p.name for p in (REPO_ROOT / "policies").glob("*.yaml"))),
       text=st.one_of(policy_values.map(yaml.safe_dump), st.text(max_size=200)))
def test_any_policy_file_loads_or_fails_with_a_configuration_error(file: str, text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        policies = Path(folder) / "policies"
        shutil.copytree(REPO_ROOT / "policies", policies)
        (policies / file).write_text(text)
        try:
            load_policies(policies, "dev")
        except ReconcilerError as exc:
            assert str(exc).strip().count("\n") == 0, str(exc)


# ---- webhooks over a real socket --------------------------------------------------------------------

@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz-daemon")
    repo = GitRepo.create(root / "git")
    env = load_environment(write_env(root / "env.yaml", repo, [("app", [])]))
    with running_daemon([env], CannedEngine, settings=DaemonSettings(poll=False, initial_pass=False)) as running:
        yield running


payloads = st.one_of(
    st.binary(max_size=300),
    yaml_values.map(lambda value: json.dumps(value, default=str).encode()),
    st.fixed_dictionaries({"ref": scalars, "after": scalars, "repository": yaml_values, "project": yaml_values,
                           "deleted": scalars, "checkout_sha": scalars}).map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(body=payloads, event=st.sampled_from(["push", "ping", "Push Hook", "", "issues"]))
def test_any_signed_github_payload_gets_an_answer_below_500(daemon, body: bytes, event: str) -> None:
    headers = {"X-Hub-Signature-256": github_signature(GITHUB_SECRET, body), "X-GitHub-Event": event,
               "Content-Type": "application/json"}
    response = requests.post(f"{daemon.base}/hooks/github", data=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text


@FUZZ
@given(body=payloads, event=st.sampled_from(["Push Hook", "Tag Push Hook", "push", ""]))
def test_any_gitlab_payload_with_the_token_gets_an_answer_below_500(daemon, body: bytes, event: str) -> None:
    headers = {"X-Gitlab-Token": GITLAB_TOKEN, "X-Gitlab-Event": event, "Content-Type": "application/json"}
    response = requests.post(f"{daemon.base}/hooks/gitlab", data=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text


@FUZZ
@given(body=st.binary(max_size=200), path=st.sampled_from(["/api/sync", "/hooks/github", "/hooks/gitlab"]),
       headers=st.dictionaries(st.sampled_from(["Authorization", "X-Hub-Signature-256", "X-Gitlab-Token",
                                                "Content-Type", "X-GitHub-Event"]),
                               st.from_regex(r"[!-~]([ -~]{0,38}[!-~])?", fullmatch=True), max_size=4))
def test_any_unauthenticated_post_gets_an_answer_below_500(daemon, body: bytes, path: str,
                                                           headers: dict[str, str]) -> None:
    response = requests.post(f"{daemon.base}{path}", data=body, headers=headers, timeout=10)
    assert response.status_code < 500, response.text


# ---- manifests, through kustomize and policy ---------------------------------------------------------

MANIFEST_KEYS = ["apiVersion", "kind", "metadata", "name", "namespace", "labels", "spec", "replicas", "template",
                 "containers", "image", "resources", "requests", "limits", "cpu", "memory", "affinity",
                 "podAntiAffinity", "topologySpreadConstraints", "selector", "matchLabels", "ports", "minReplicas",
                 "maxReplicas", "minAvailable", "podSelector", "ingress", "egress", "livenessProbe", "readinessProbe"]
manifest_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(MANIFEST_KEYS), inner, max_size=5)), max_leaves=30)
manifests = st.fixed_dictionaries({
    "apiVersion": st.sampled_from(["apps/v1", "v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"]),
    "kind": st.sampled_from(["Deployment", "StatefulSet", "Service", "ConfigMap", "HorizontalPodAutoscaler",
                             "PodDisruptionBudget", "NetworkPolicy"]),
    "metadata": st.fixed_dictionaries({"name": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)},
                                      optional={"namespace": st.sampled_from(["default", "app"]),
                                                "labels": manifest_values}),
}, optional={"spec": manifest_values, "data": manifest_values})


@FUZZ
@given(objects=st.lists(manifests, min_size=1, max_size=3, unique_by=lambda m: (m["kind"], m["metadata"]["name"])))
def test_any_manifest_is_rendered_and_checked_by_policy_or_fails_with_one_line(objects: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        (tree / "stacks" / "app").mkdir(parents=True)
        (tree / "stacks" / "app" / "objects.yaml").write_text(yaml.safe_dump_all(objects))
        (tree / "stacks" / "app" / "kustomization.yaml").write_text("resources: [objects.yaml]\n")
        _assert_policy_check_answers(tree, tree / "cache")


def _assert_policy_check_answers(tree: Path, cache: Path) -> None:
    """`policy check --worktree` of stack `stacks/app` in `tree` under the repository's policies: exit 0, 1
    or 2, never a traceback."""
    shutil.copytree(REPO_ROOT / "policies", tree / "policies")
    (tree / "env.yaml").write_text(yaml.safe_dump({"name": "fuzz", "source": {"url": "https://example.invalid/r.git"},
                                                   "stacks": [{"name": "app", "path": "stacks/app"}]}))
    before = os.getcwd()
    os.chdir(tree)
    try:
        code, err = _cli("policy", "check", "--worktree", "-e", str(tree / "env.yaml"), "--cache-dir", str(cache))
    finally:
        os.chdir(before)
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err


# ---- revisions, as `preview --revision` and `rollback --to` (and POST /api/rollback) take them ----------

@pytest.fixture(scope="module")
def url_source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An environment whose source is a file:// URL (fetched as from a Git host), and a marker path."""
    root = tmp_path_factory.mktemp("revisions")
    repo = GitRepo.create(root / "git")
    repo.write("stacks/app/kustomization.yaml", "resources: []\n")
    repo.commit_and_push("empty stack")
    env = root / "env.yaml"
    env.write_text(yaml.safe_dump({"name": "fuzz", "source": {"url": f"file://{repo.bare}"},
                                   "stacks": [{"name": "app", "path": "stacks/app"}]}))
    return env, root / "pwned"


@FUZZ
@given(revision=st.one_of(st.text(max_size=40), st.sampled_from(["--upload-pack=touch {marker}", "-h", "--help", "HEAD",
                                                                  "main", "main..HEAD", "HEAD~1", "@{-1}", "-"])))
def test_any_revision_to_preview_resolves_or_fails_with_one_line_and_never_runs_git_options(
        url_source: tuple[Path, Path], revision: str) -> None:
    env, marker = url_source
    revision = revision.replace("{marker}", str(marker))
    if "\x00" in revision:
        return  # not representable in argv
    code, err = _cli("preview", "-e", str(env), "--cache-dir", str(env.parent / "cache"), f"--revision={revision}",
                     "--base", "main")
    assert not marker.exists(), f"{revision!r} ran as a git option"
    assert code in (0, 1, 2), (code, err)
    if code == 2:
        assert err.startswith("error: ") and err.strip().count("\n") == 0, err
    assert "Traceback" not in err


# ---- Helm chart values and SOPS-encrypted files ---------------------------------------------------

@FUZZ
@given(values=st.dictionaries(st.sampled_from(["replicaCount", "greeting", "extraSetting", "image", "x"]), yaml_values,
                              max_size=4))
def test_any_chart_values_render_and_are_checked_by_policy_or_fail_with_one_line(values: dict[str, Any]) -> None:
    from charts import chart_stack
    from gitrepo import PushRepo

    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        repo = PushRepo(tree / "git")
        chart_stack(repo, "app", "app", values)
        _assert_policy_check_answers(repo.work_path, tree / "cache")


@pytest.fixture(scope="module")
def encrypted_secret(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(an age identity, a Secret manifest encrypted for it by the real sops)."""
    from sops_support import age_key, encrypt_file, secret

    root = tmp_path_factory.mktemp("sops")
    key = age_key(root / "keys")
    path = root / "secret.yaml"
    path.write_text(yaml.safe_dump(secret("db", "app", password="fuzzed-secret", user="app")))
    encrypt_file(path, age=key)
    return key.identity, path.read_text()


@FUZZ
@given(position=st.integers(0, 10**6), replacement=st.text(max_size=12), cut=st.booleans())
def test_any_corrupted_encrypted_file_decrypts_or_fails_its_stack_with_one_line(
        encrypted_secret: tuple[str, str], position: int, replacement: str, cut: bool) -> None:
    from reconciler.config import DecryptionConfig
    from reconciler.errors import RenderError
    from reconciler.objects import parse_objects
    from reconciler.pipeline.decrypt import Decryptor, SopsKeys

    identity, text = encrypted_secret
    at = position % len(text)
    corrupted = text[:at] + replacement + ("" if cut else text[at + len(replacement):])
    with tempfile.TemporaryDirectory() as folder:
        tree = Path(folder)
        (tree / "secret.yaml").write_text(corrupted)
        decryptor = Decryptor(DecryptionConfig(keyFile="k"), lambda: SopsKeys(age=(identity,)), "env.yaml")
        try:
            objects = parse_objects(corrupted, stack="app")
        except ReconcilerError:
            return  # not a manifest any more: kustomize refuses it before decryption is asked
        try:
            decrypted = decryptor.objects(tree, "app", objects)
        except RenderError as exc:
            assert "\n" not in exc.message.strip(), exc.message
            if "cannot decrypt" in exc.message:
                assert "secret.yaml" in exc.message
            return
        for obj in decrypted:
            assert "sops" not in obj.manifest
            assert "ENC[AES256_GCM," not in json.dumps(obj.manifest)
