"""Plain manifests: a kustomization of YAML files alone is read without kustomize, to the objects the
real kustomize CLI builds; anything kustomize would read, change or refuse otherwise is left to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.errors import RenderError
from reconciler.objects import parse_objects, parse_reusing
from reconciler.pipeline.plain import plain_manifests
from reconciler.pipeline.render import render_stack, run_kustomize

PLAIN = """\
# the app's objects
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
  labels: {tier: "1", owner: team-a}
data:
  port: "8080"
  quoted: 'on'
  script: |
    echo on
    exit 0
  folded: >
    one
    two
  anchor: &shared hello
  alias: *shared
  empty: ""
---
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app, namespace: web}
spec:
  replicas: 3
  paused: false
  progressDeadlineSeconds: -1
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}, annotations: {note: null, other: ~}}
    spec:
      containers: [{name: app, image: "nginx:1.27", args: [--port, "8080"]}]
"""


def write(folder: Path, files: dict[str, str], resources: list[str], **fields: object) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    (folder / "kustomization.yaml").write_text(yaml.safe_dump({"resources": resources, **fields}))
    return folder


def objects(text: str) -> list[dict]:
    return sorted((o.manifest for o in parse_objects(text, stack="s")), key=lambda m: (m["kind"], m["metadata"]["name"]))


def test_plain_files_read_to_the_objects_kustomize_builds(tmp_path: Path) -> None:
    folder = write(tmp_path, {"app.yaml": PLAIN, "more/service.yml": "apiVersion: v1\nkind: Service\n"
                              "metadata: {name: app}\nspec: {ports: [{port: 80}]}"}, ["app.yaml", "more/service.yml"])

    text = plain_manifests(folder)

    assert text is not None
    assert objects(text) == objects(run_kustomize(folder, "s"))


def test_a_plain_stack_renders_where_no_kustomize_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "stack", {"app.yaml": PLAIN}, ["app.yaml"])
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    rendered = render_stack(tmp_path, "s", "stack")

    assert [o.kind for o in parse_objects(rendered.text, stack="s")] == ["ConfigMap", "Deployment"]
    with pytest.raises(RenderError, match="neither kustomize nor kubectl"):
        render_stack(write(tmp_path / "other", {"app.yaml": PLAIN}, ["app.yaml"], namespace="x"), "s", ".")


@pytest.mark.parametrize("value", ["on", "yes", "No", "1e3", "0o17", "0755", "1:20", "2024-01-01", "1.5", ".5",
                                   "0x1F", "1_000"])
def test_a_scalar_yaml_1_1_and_kustomize_read_differently_is_left_to_kustomize(tmp_path: Path, value: str) -> None:
    folder = write(tmp_path, {"cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {{v: {value}}}\n"},
                   ["cm.yaml"])

    assert plain_manifests(folder) is None


def test_the_scalars_left_to_kustomize_would_read_otherwise(tmp_path: Path) -> None:
    """Why the check exists: kustomize's YAML 1.2 output, parsed, differs from the file parsed as it is."""
    values = {"a": "on", "b": "yes", "c": "1e3", "d": "0o17", "e": "1:20", "f": "2024-01-01"}
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n" + "".join(f"  {k}: {v}\n" for k, v in values.items())
    folder = write(tmp_path, {"cm.yaml": text}, ["cm.yaml"])

    built = objects(run_kustomize(folder, "s"))[0]["data"]
    as_written = yaml.safe_load(text)["data"]

    assert [k for k in values if built[k] != as_written[k] or type(built[k]) is not type(as_written[k])] == list(values)


@pytest.mark.parametrize("text", [
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: !!str x}\nother: !custom x\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: !!int \"3\"}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: x, v: y}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  <<: {v: x}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {1: x}\n",
    "%YAML 1.1\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
], ids=["custom tag", "explicit int", "duplicate key", "merge key", "number key", "directive"])
def test_yaml_kustomize_would_refuse_or_read_otherwise_is_left_to_it(tmp_path: Path, text: str) -> None:
    assert plain_manifests(write(tmp_path, {"cm.yaml": text}, ["cm.yaml"])) is None


@pytest.mark.parametrize("text", [
    "apiVersion: v1\nkind: ConfigMapList\nmetadata: {name: l}\nitems: []\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, annotations: {config.kubernetes.io/local-config: 'true'}}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {a: b}}\n",
    "kind: ConfigMap\nmetadata: {name: a}\n",
    "- apiVersion: v1\n  kind: ConfigMap\n",
], ids=["list", "local config", "same identity twice", "no name", "no apiVersion", "not a mapping"])
def test_objects_kustomize_flattens_drops_or_refuses_are_left_to_it(tmp_path: Path, text: str) -> None:
    assert plain_manifests(write(tmp_path, {"cm.yaml": text}, ["cm.yaml"])) is None


@pytest.mark.parametrize("resources,fields", [
    (["app.yaml"], {"namespace": "web"}),
    (["app.yaml"], {"commonLabels": {"a": "b"}}),
    (["app.yaml", "base"], {}),
    (["../outside.yaml"], {}),
    (["https://example.com/app.yaml"], {}),
    (["app.json"], {}),
    (["app.yaml"], {"kind": "Component", "apiVersion": "kustomize.config.k8s.io/v1alpha1"}),
], ids=["namespace", "labels", "a folder", "outside the folder", "remote", "not yaml", "component"])
def test_a_kustomization_that_transforms_or_reaches_further_is_left_to_kustomize(
        tmp_path: Path, resources: list[str], fields: dict) -> None:
    (tmp_path / "outside.yaml").write_text(PLAIN)
    folder = write(tmp_path / "stack", {"app.yaml": PLAIN, "app.json": "{}", "base/kustomization.yaml": "resources: []\n"},
                   resources, **fields)

    assert plain_manifests(folder) is None


def test_each_object_of_plain_files_names_its_file_without_origin_annotations(tmp_path: Path) -> None:
    """kustomize names files only with the user's `buildMetadata: [originAnnotations]`: without it, no error,
    plan line or violation said where an object came from."""
    folder = write(tmp_path, {"app.yaml": PLAIN, "more/service.yml": "apiVersion: v1\nkind: Service\n"
                              "metadata: {name: app}\nspec: {ports: [{port: 80}]}"}, ["app.yaml", "more/service.yml"])

    text = plain_manifests(folder)

    assert text is not None
    objects, _ = parse_reusing(text, {}, stack="s", base_dir="stacks/app")
    assert {o.kind: o.source_file for o in objects} == {
        "ConfigMap": "stacks/app/app.yaml", "Deployment": "stacks/app/app.yaml", "Service": "stacks/app/more/service.yml"}


def test_a_plain_file_with_a_line_break_only_yaml_counts_reads_to_the_same_objects_without_naming_its_file(
        tmp_path: Path) -> None:
    """libyaml counts NEL (U+0085) in a quoted value as a line break, `\\n` does not: a comment put in by the
    `\\n` count would land lines late, here inside the next document's block scalar. Such a file is passed on
    as it is."""
    text = ('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {v: "p\u0085q\u0085r"}\n---\n'
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata:\n  script: |\n    one\n    two\n")
    folder = write(tmp_path, {"cm.yaml": text}, ["cm.yaml"])

    plain = plain_manifests(folder)

    assert plain is not None and objects(plain) == objects(run_kustomize(folder, "s"))
    assert [o.source_file for o in parse_reusing(plain, {}, stack="s")[0]] == [None, None]
