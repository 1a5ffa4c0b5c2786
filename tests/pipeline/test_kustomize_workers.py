"""kustomize workers: the CLI's build in long-lived processes, with the CLI's output, errors and timeouts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from helpers import wait_for

from reconciler.errors import RenderError
from reconciler.pipeline.kustomize_workers import WORKER, WORKER_GOGC, KustomizeWorkers
from reconciler.pipeline.render import kustomize_command, run_kustomize

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": name}}


@pytest.fixture()
def workers() -> KustomizeWorkers:
    pool = KustomizeWorkers.installed(size=2)
    assert pool is not None, f"`make tools` installs {WORKER}; it is not on PATH"
    yield pool
    pool.close()


@pytest.fixture()
def trees(tmp_path: Path) -> dict[str, Path]:
    """Kustomizations that build, fail, warn and fail, and a folder that does not exist."""
    write(tmp_path / "base/cm.yaml", configmap("base"))
    write(tmp_path / "base/kustomization.yaml", {"resources": ["cm.yaml"]})
    write(tmp_path / "ok/kustomization.yaml", {"namespace": "team", "nameSuffix": "-x", "resources": ["../base"],
                                               "configMapGenerator": [{"name": "gen", "literals": ["a=b"]}]})
    write(tmp_path / "missing/kustomization.yaml", {"resources": ["gone.yaml"]})
    write(tmp_path / "warns/kustomization.yaml", {"commonLabels": {"a": "b"}, "resources": ["gone.yaml"]})
    return {name: tmp_path / name for name in ("ok", "missing", "warns", "absent")}


@pytest.fixture()
def hanging_chart(tmp_path: Path) -> tuple[Path, Path]:
    """(a `helm` that never answers, a kustomization whose Helm chart makes kustomize run it)."""
    helm = tmp_path / "helm"
    write(helm, "#!/bin/sh\nexec sleep 60\n")
    helm.chmod(0o755)
    chart = tmp_path / "chart"
    write(chart / "kustomization.yaml", {"helmCharts": [{"name": "any", "repo": "https://charts.example.test"}]})
    return helm, chart


def test_a_worker_build_returns_and_prints_exactly_what_the_kustomize_cli_does(
        workers: KustomizeWorkers, trees: dict[str, Path]) -> None:
    command = kustomize_command()
    for name, folder in trees.items():
        cli = subprocess.run([*command, str(folder)], capture_output=True, text=True, check=False)
        built = workers.build([*command[2:], str(folder)], timeout_s=60)
        assert (built.returncode, built.stdout, built.stderr) == (cli.returncode, cli.stdout, cli.stderr), name
    assert "name: gen-x-" in workers.build([str(trees["ok"])], 60).stdout  # built, not a shared error
    assert "deprecated" in workers.build([str(trees["warns"])], 60).stderr  # kustomize's warning, as the CLI prints


TRICKY_VALUES = """\
apiVersion: example.test/v1
kind: Widget
metadata: {name: tricky, annotations: {note: "yes"}}
spec:
  ints: [0, -12, 0x1F, 0o17, 9223372036854775807]
  strings: ["yes", "no", "on", "~", "", " lead", "trail ", "0x1F", "1e3", "1_000", "12:30:45", "2002-12-14",
            "a: b", "- x", "#c", "multi\\nline\\n", "tab\\there", "\u00fc\u00f1\u00ee", "<html>&amp;", "{a: 1}"]
  plain: [yes, 2002-12-14, 12:30:45, 0x10, null, ~, true, "y"]
  empty: {list: [], map: {}, none: null}
  block: |
    line one
      indented
  folded: >
    folded
    text
  anchored: &a {x: 1}
  aliased: *a
  Zeta: 1
  a10: 1
  a2: 1
---
apiVersion: example.test/v1
kind: Widget
metadata: {name: floats}
spec: {floats: [0.5, 1.0, 1e6, 2.5e-7, -0.0, 1e21, 123456789.125]}
---
apiVersion: example.test/v1
kind: Widget
metadata: {name: uint}
spec: {uint: 18446744073709551615}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: plain}
data: {b: "2", a: "1", "10": ten, "9": nine}
"""


def test_a_worker_writes_every_kind_of_yaml_value_exactly_as_the_kustomize_cli_does(
        workers: KustomizeWorkers, tmp_path: Path) -> None:
    """The worker writes objects without the CLI's JSON round trip: floats, octal and hex ints, strings
    that look like other types, dates, anchors and block scalars must still come out byte for byte."""
    write(tmp_path / "tricky/objects.yaml", TRICKY_VALUES)
    write(tmp_path / "tricky/kustomization.yaml", {"namespace": "team", "namePrefix": "p-",
                                                   "resources": ["objects.yaml"]})
    write(tmp_path / "intkey/objects.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\nx: {1: one}\n")
    write(tmp_path / "intkey/kustomization.yaml", {"resources": ["objects.yaml"]})
    command = kustomize_command()
    for name in ("tricky", "intkey"):
        cli = subprocess.run([*command, str(tmp_path / name)], capture_output=True, text=True, check=False)
        built = workers.build([*command[2:], str(tmp_path / name)], timeout_s=60)
        assert (built.returncode, built.stdout, built.stderr) == (cli.returncode, cli.stdout, cli.stderr), name
    assert "name: p-tricky" in workers.build([str(tmp_path / "tricky")], 60).stdout
    assert workers.build([str(tmp_path / "intkey")], 60).returncode != 0  # JSON has no int keys: the CLI fails


def test_a_worker_build_with_an_output_file_writes_the_file_the_kustomize_cli_writes(
        workers: KustomizeWorkers, trees: dict[str, Path], tmp_path: Path) -> None:
    command = kustomize_command()
    subprocess.run([*command, str(trees["ok"]), "-o", str(tmp_path / "cli.yaml")], check=True)

    built = workers.build([str(trees["ok"]), "-o", str(tmp_path / "worker.yaml")], timeout_s=60)

    assert (built.returncode, built.stdout) == (0, "")
    assert (tmp_path / "worker.yaml").read_text() == (tmp_path / "cli.yaml").read_text()


def test_builds_asked_at_once_are_built_by_one_worker_each_as_the_kustomize_cli_does(
        workers: KustomizeWorkers, trees: dict[str, Path]) -> None:
    command = kustomize_command()
    folders = [*trees.values(), trees["ok"]]

    answers = workers.build_all([[*command[2:], str(folder)] for folder in folders], timeout_s=60)

    for folder, built in zip(folders, answers, strict=True):
        cli = subprocess.run([*command, str(folder)], capture_output=True, text=True, check=False)
        assert (built.returncode, built.stdout, built.stderr) == (cli.returncode, cli.stdout, cli.stderr), folder
    assert len(workers.pids()) == 1


def test_of_builds_asked_at_once_one_over_its_timeout_fails_alone_and_the_next_is_built_in_another_worker(
        workers: KustomizeWorkers, trees: dict[str, Path], hanging_chart: tuple[Path, Path]) -> None:
    helm, chart = hanging_chart
    ok = [str(trees["ok"])]

    first, hung, after = workers.build_all([ok, ["--enable-helm", f"--helm-command={helm}", str(chart)], ok],
                                           timeout_s=2)

    assert isinstance(hung, subprocess.TimeoutExpired)
    assert first.returncode == 0 and after == first


def test_a_build_over_its_timeout_kills_its_worker_and_the_next_build_starts_another(
        workers: KustomizeWorkers, trees: dict[str, Path], hanging_chart: tuple[Path, Path]) -> None:
    helm, chart = hanging_chart

    with pytest.raises(subprocess.TimeoutExpired):
        workers.build(["--enable-helm", f"--helm-command={helm}", str(chart)], timeout_s=1)
    assert workers.pids() == set()

    assert workers.build([str(trees["ok"])], timeout_s=60).returncode == 0
    assert len(workers.pids()) == 1


def test_a_pools_builds_share_one_thread_for_their_deadlines(
        workers: KustomizeWorkers, trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread started per build (a `threading.Timer`) cost about 0.2 ms of CPU each."""
    started: list[str] = []
    start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), start(thread))[1])

    for _ in range(5):
        workers.build([str(trees["ok"])], timeout_s=60)

    assert started == ["kustomize-deadlines"]


def test_a_build_over_its_timeout_is_stopped_though_a_longer_one_runs_beside_it(
        workers: KustomizeWorkers, hanging_chart: tuple[Path, Path]) -> None:
    """The deadline thread sleeps until the earliest deadline: a later, shorter one wakes it."""
    helm, chart = hanging_chart
    args = ["--enable-helm", f"--helm-command={helm}", str(chart)]
    longer = threading.Thread(target=lambda: pytest.raises(subprocess.TimeoutExpired, workers.build, args, 4))
    longer.start()
    wait_for(lambda: workers.pids(), timeout_s=10, what="the longer build's worker")

    with pytest.raises(subprocess.TimeoutExpired):
        workers.build(args, timeout_s=1)
    assert longer.is_alive()  # still waiting: the shorter deadline came first
    longer.join(60)


def test_a_stack_whose_build_times_out_in_a_worker_fails_with_the_render_timeout_message(
        workers: KustomizeWorkers, hanging_chart: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    helm, chart = hanging_chart
    monkeypatch.setenv("RECONCILER_HELM", str(helm))

    with pytest.raises(RenderError, match="kustomize did not finish within 1s"):
        run_kustomize(chart, "charts", timeout_s=1, workers=workers)


def test_a_worker_killed_between_builds_is_replaced_by_the_next_build(
        workers: KustomizeWorkers, trees: dict[str, Path]) -> None:
    first = workers.build([str(trees["ok"])], 60)
    (victim,) = workers.pids()
    os.kill(victim, signal.SIGKILL)

    again = workers.build([str(trees["ok"])], 60)

    assert again == first
    assert len(workers.pids()) == 1 and victim not in workers.pids()


@pytest.mark.parametrize("environment, expected", [({}, WORKER_GOGC), ({"GOGC": "50"}, "50")])
def test_a_worker_collects_garbage_at_the_workers_target_unless_the_environment_sets_one(
        workers: KustomizeWorkers, trees: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
        environment: dict[str, str], expected: str) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    workers.build([str(trees["ok"])], 60)
    (worker,) = workers.pids()

    variables = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")

    assert f"GOGC={expected}".encode() in variables


def test_builds_from_many_threads_each_get_their_own_output_from_at_most_the_pool_size_of_workers(
        workers: KustomizeWorkers, tmp_path: Path) -> None:
    for i in range(8):
        write(tmp_path / f"s{i}/kustomization.yaml", {"resources": ["cm.yaml"]})
        write(tmp_path / f"s{i}/cm.yaml", configmap(f"cm-{i}"))
    outputs: dict[int, str] = {}
    seen: list[set[int]] = []

    def build(i: int) -> None:
        outputs[i] = workers.build([str(tmp_path / f"s{i}")], 60).stdout
        seen.append(workers.pids())

    threads = [threading.Thread(target=build, args=(i,)) for i in range(8) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert {i: yaml.safe_load(text)["metadata"]["name"] for i, text in outputs.items()} == {
        i: f"cm-{i}" for i in range(8)}
    assert max(len(s) for s in seen) <= 2


def test_the_worker_builds_the_same_kustomize_module_as_the_pinned_cli() -> None:
    pinned = re.search(r"^KUSTOMIZE_VERSION := (\S+)", (REPO_ROOT / "Makefile").read_text(), re.M).group(1)
    go_mod = (REPO_ROOT / "devcluster/gotools/kustomize-worker/go.mod").read_text()
    assert re.search(rf"sigs\.k8s\.io/kustomize/kustomize/v5 {re.escape(pinned)}\b", go_mod)


def test_a_build_with_its_own_openapi_schema_leaves_no_trace_in_the_next_build_in_that_worker(tmp_path: Path) -> None:
    """kyaml keeps a kustomization's `openapi:` schema process-wide; a new CLI process starts without it."""
    schema = {"definitions": {"v1alpha1.Widget": {
        "type": "object",
        "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1alpha1"}],
        "properties": {"spec": {"type": "object", "properties": {"items": {
            "type": "array", "x-kubernetes-patch-merge-key": "name", "x-kubernetes-patch-strategy": "merge",
            "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}}}}}}}}}
    for name, extra in (("with-schema", {"openapi": {"path": "schema.json"}}), ("without", {})):
        folder = tmp_path / name
        write(folder / "schema.json", json.dumps(schema))
        widget = {"apiVersion": "example.com/v1alpha1", "kind": "Widget", "metadata": {"name": "w"}}
        items = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
        write(folder / "widget.yaml", {**widget, "spec": {"items": items}})
        write(folder / "patch.yaml", {**widget, "spec": {"items": [{"name": "a", "value": "9"}]}})
        write(folder / "kustomization.yaml", {"resources": ["widget.yaml"], "patches": [{"path": "patch.yaml"}],
                                              **extra})
    one_worker = KustomizeWorkers(KustomizeWorkers.installed().binary, size=1)
    command = kustomize_command()

    built = [one_worker.build([str(tmp_path / name)], 60).stdout for name in ("without", "with-schema", "without")]
    one_worker.close()

    by_cli = {name: subprocess.run([*command[:2], str(tmp_path / name)], capture_output=True, text=True).stdout
              for name in ("without", "with-schema")}
    assert built == [by_cli["without"], by_cli["with-schema"], by_cli["without"]]
    assert by_cli["with-schema"] != by_cli["without"]  # the schema merges the list by name; without it, replaces
