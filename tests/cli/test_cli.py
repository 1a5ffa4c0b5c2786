"""The `reconciler` command as a user runs it: real processes, a real Git remote, the real cluster."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from helpers import wait_for
from manifests import configmap, deployment, make_env, write_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_VALUE = "hunter2-do-not-print"


def reconciler(*args: str, kubeconfig: Path | None = None, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    environ = {**os.environ, "COLUMNS": "200"}
    if kubeconfig:
        environ["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([sys.executable, "-m", "reconciler", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=300)


def test_help_lists_every_command() -> None:
    out = reconciler("--help").stdout
    for command in ("validate", "render", "plan", "sync", "drift", "status", "policy", "run"):
        assert command in out


def test_help_loads_neither_the_kubernetes_client_nor_structlog() -> None:
    """`--help`, `validate` and the `--remote` commands need neither: each is about a tenth of a second of a
    process's start (the daemon's lease settings and the logging set-up are imported where they are used)."""
    program = ("import sys; from reconciler.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
               "    pass\nprint(sorted({'kubernetes', 'structlog'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT,
                         check=True, timeout=60).stdout
    assert out.splitlines()[-1] == "[]"


def test_a_reconciler_process_collects_its_youngest_objects_ten_times_less_often_than_python() -> None:
    program = "import gc; from reconciler.cli.main import main; main([]); print(*gc.get_threshold())"
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT,
                         check=True, timeout=60).stdout

    assert out.splitlines()[-1] == "7000 10 10"  # Python's default: 700 10 10

def test_the_program_freezes_its_heap_before_python_shuts_down_and_still_runs_exit_handlers() -> None:
    """Python's shutdown collects the whole heap unless it is frozen (0.1 s after a 1,000-object sync)."""
    program = ("import atexit, gc, sys; atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0)); "
               "sys.argv = ['reconciler']; from reconciler.cli import command; command()")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "frozen at exit: True"



def test_an_invalid_environment_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "bad", "source": {"url": "x"}, "stacks": [
        {"name": "a", "path": "a", "dependsOn": ["b"]}, {"name": "b", "path": "b", "dependsOn": ["a"]}]}))

    result = reconciler("plan", "--env", str(bad))

    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "bad.yaml" in result.stderr and "cycle" in result.stderr and "fix:" in result.stderr


def test_run_on_a_port_in_use_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = reconciler("run", "--env", "dev", "--listen", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path),
                            "--kubeconfig", str(tmp_path / "none"))

    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: cannot listen on 127.0.0.1:{port}: Address already in use (fix: stop "
                                     "the process using that port, or pass --listen with a free address "
                                     "(RECONCILER_LISTEN))")


def test_run_off_loopback_without_a_read_token_is_refused_in_one_line(tmp_path: Path) -> None:
    result = reconciler("run", "--env", "dev", "--listen", "0.0.0.0:0", "--cache-dir", str(tmp_path),
                        "--kubeconfig", str(tmp_path / "none"))

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "--listen 0.0.0.0:0 serves status, drift values and runs to anyone" in result.stderr
    assert "--insecure-read" in result.stderr


def test_run_with_an_unreadable_environments_folder_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    result = reconciler("run", "--environments", str(tmp_path / "missing"), "--cache-dir", str(tmp_path),
                        "--kubeconfig", str(tmp_path / "none"))

    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and str(tmp_path / "missing") in result.stderr


def test_policy_check_of_prod_passes_and_prints_its_time() -> None:
    result = reconciler("policy", "check", "--env", "prod", "--worktree", "-o", "json")

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["violations"] == []
    assert "evaluated 155 objects in" in result.stderr


def test_policy_check_exits_1_on_an_enforced_violation(tmp_path: Path) -> None:
    work = tmp_path / "copy"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(work)], check=True)
    patch = work / "overlays/prod/gateway/kustomization.yaml"
    data = yaml.safe_load(patch.read_text())
    data.setdefault("replicas", []).append({"name": "traefik", "count": 1})
    patch.write_text(yaml.safe_dump(data))

    result = reconciler("policy", "check", "--env", "prod", "--worktree", "-o", "sarif", cwd=work)

    assert result.returncode == 1
    sarif = json.loads(result.stdout)
    assert "min-replicas" in {r["ruleId"] for r in sarif["runs"][0]["results"]}


@pytest.mark.cluster
def test_plan_exits_1_with_changes_and_sync_then_plan_exit_0(repo, tmp_path, namespace, kubeconfig) -> None:
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    env = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    cache = str(tmp_path / "cache")

    planned = reconciler("plan", "--env", str(env), "--cache-dir", cache, kubeconfig=kubeconfig)
    synced = reconciler("sync", "--env", str(env), "--cache-dir", cache, kubeconfig=kubeconfig)
    clean = reconciler("plan", "--env", str(env), "--cache-dir", cache, "-o", "yaml", kubeconfig=kubeconfig)

    assert (planned.returncode, synced.returncode, clean.returncode) == (1, 1, 0), synced.stderr
    assert f"core/ConfigMap/{namespace}/settings" in planned.stdout
    assert "app: done applied" in synced.stderr  # progress display
    assert yaml.safe_load(clean.stdout)["stacks"][0]["state"] == "unchanged"


@pytest.mark.cluster
def test_brackets_in_a_commit_message_and_in_the_api_servers_answer_print_as_written(
        repo, tmp_path, namespace, kubeconfig) -> None:
    """rich reads `[...]` as markup: `[/b]` in a commit message ended the command in a traceback, and the
    API server's `[name="A"]` vanished from the reason."""
    env_twice = deployment("web", namespace, env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}])
    write_stack(repo, "app", [env_twice])
    repo.commit("web [/b] with A twice")
    env = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])

    synced = reconciler("sync", "--env", str(env), "--cache-dir", str(tmp_path / "cache"), kubeconfig=kubeconfig)

    assert synced.returncode == 2, synced.stderr
    assert "Traceback" not in synced.stderr
    assert "web [/b] with A twice" in synced.stdout
    unwrapped = "".join(synced.stdout.split())  # the table wraps the reason over lines
    assert 'containers[name="main"].env:duplicateentriesforkey[name="A"]' in unwrapped
    assert 'key[name="A"]' in "".join(synced.stderr.split())  # the progress line


@pytest.mark.cluster
def test_a_daemon_without_a_kustomize_worker_says_so_when_it_starts(repo, tmp_path, namespace, kubeconfig) -> None:
    """A process per render made a fleet push's p95 94 s instead of 8 s: an operator must hear of it."""
    write_stack(repo, "app", [configmap("settings", namespace, {"mode": "blue"})])
    repo.commit("blue")
    env = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "run", "--environments", str(env), "--listen", "127.0.0.1:0",
             "--cache-dir", str(tmp_path / "cache"), "--kubeconfig", str(kubeconfig), "--no-kubernetes-events",
             "--log-format", "json"], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "RECONCILER_KUSTOMIZE_WORKER": ""})
        try:
            wait_for(lambda: "daemon started" in log.read_text(), timeout_s=60, what="the daemon to start")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)

    [warning] = [entry for entry in map(json.loads, log.read_text().splitlines())
                 if entry["event"].startswith("no kustomize-worker installed")]
    assert warning["level"] == "warning"
    assert "every render starts a kustomize process of its own" in warning["event"]
    assert "make tools" in warning["fix"]


@pytest.mark.long
@pytest.mark.cluster
def test_no_secret_value_appears_in_any_output(repo, tmp_path, namespace, kubeconfig, api_client) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
              "stringData": {"password": SECRET_VALUE}}
    write_stack(repo, "app", [secret])
    repo.commit("a secret")
    env = make_env(tmp_path, repo, namespace, [{"name": "app", "path": "stacks/app"}])
    cache = str(tmp_path / "cache")
    outputs = [reconciler("sync", "--env", str(env), "--cache-dir", cache, "-o", "json", kubeconfig=kubeconfig)]
    client.CoreV1Api(api_client).patch_namespaced_secret("db", namespace, {"stringData": {"password": "changed"}})
    for args in (["plan", "-v"], ["plan", "-o", "json"], ["drift", "-o", "json"], ["drift"], ["render"],
                 ["sync", "-o", "yaml"]):
        outputs.append(reconciler(*args, "--env", str(env), "--cache-dir", cache, kubeconfig=kubeconfig))

    assert outputs[-1].returncode == 1, outputs[-1].stderr  # the drifted Secret was changed back
    for output in outputs:
        assert SECRET_VALUE not in output.stdout + output.stderr
    assert "***" in outputs[1].stdout


@pytest.mark.cluster
def test_a_single_stack_sync_waits_for_healthy_dependencies(repo, tmp_path, namespace, kubeconfig) -> None:
    unschedulable = deployment("huge", namespace, replicas=1)
    unschedulable["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "64"}}
    write_stack(repo, "base", [unschedulable])
    write_stack(repo, "top", [configmap("top", namespace, {"a": "1"})])
    repo.commit("a dependency that never becomes healthy")
    env = make_env(tmp_path, repo, namespace, [{"name": "base", "path": "stacks/base", "healthTimeout": "2s"},
                                               {"name": "top", "path": "stacks/top", "dependsOn": ["base"]}])

    result = reconciler("sync", "--env", str(env), "--stack", "top", "--cache-dir", str(tmp_path / "c"),
                        "-o", "json", kubeconfig=kubeconfig)

    assert result.returncode == 2
    [stack] = json.loads(result.stdout)["stacks"]
    assert stack["state"] == "blocked" and stack["blocked_by"] == ["base"]
    assert "never synced" in stack["reason"]


def test_an_environment_name_kubernetes_cannot_take_is_refused_by_validate(tmp_path: Path) -> None:
    env = tmp_path / "envs" / "bad.yaml"
    env.parent.mkdir()
    env.write_text(yaml.safe_dump({"name": "cs_github", "source": {"url": "https://example.invalid/r.git"},
                                   "policy": {"mode": "off"}, "stacks": [{"name": "app", "path": "stacks/app"}]}))

    result = reconciler("validate", "--environments", str(env.parent))

    assert result.returncode == 2 and "environment name 'cs_github' must be lowercase" in result.stderr


def test_rendering_the_working_copy_never_writes_to_it(tmp_path: Path) -> None:
    """`render --worktree` builds the files of a user's checkout where they are: nothing of the render (a
    partial file, an added key) may be left in them."""
    work = tmp_path / "work"
    stack = work / "stacks/app"
    stack.mkdir(parents=True)
    (stack / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {v: '1'}\n")
    kustomization = "namespace: app\nresources: [cm.yaml]\n"
    (stack / "kustomization.yaml").write_text(kustomization)
    (work / "environments").mkdir()
    (work / "environments/dev.yaml").write_text(yaml.safe_dump({
        "name": "dev", "source": {"url": "", "branch": "main"}, "policy": {"mode": "off"},
        "stacks": [{"name": "app", "path": "stacks/app"}]}))
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)

    result = reconciler("render", "--env", "dev", "--worktree", "--cache-dir", str(tmp_path / "cache"), cwd=work)

    assert result.returncode == 0, result.stderr
    assert "name: app" in result.stdout
    assert (stack / "kustomization.yaml").read_text() == kustomization
    assert sorted(p.name for p in stack.iterdir()) == ["cm.yaml", "kustomization.yaml"]
