"""Plain manifests: a kustomization that only lists YAML files is read without running kustomize.

Why: kustomize's build is quadratic in the number of resources (its resource map checks every new
resource against all before it: 0.7 s for 1,000 ConfigMaps here, 22 s for 5,000; kustomize #5084),
and a kustomization with nothing but `resources: [files]` transforms nothing. Argo CD reads such a
folder itself too (its "directory" applications). The text handed on is the files' own, parsed later
exactly as kustomize's output is.

The shortcut is taken only when the result is the one kustomize's would parse to; anything else
returns None and kustomize runs (and reports the error, if there is one):

- the kustomization has no key but `resources` (and `apiVersion`/`kind: Kustomization`), and every
  resource is a `.yaml`/`.yml` file in or below its folder (kustomize refuses files outside it);
- every document is a mapping with apiVersion, kind and metadata.name, no kind ending in `List`
  (kustomize flattens lists), no `config.kubernetes.io/local-config` annotation (kustomize drops
  those), no two with one identity (kustomize refuses), no duplicate key in a mapping, no `<<` merge;
- every scalar reads the same in YAML 1.1 (PyYAML, which parses the render) as in kustomize's YAML
  1.2: kustomize re-writes `on` as "on" and `1e3` as 1000, PyYAML reads them as True and '1e3'. So a
  plain (unquoted) scalar may only be a string that does not start like a number, a decimal integer
  without leading zero, true/false or null; quoted and block scalars are strings in both; no tags.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from reconciler.objects import SOURCE_COMMENT, group_of
from reconciler.pipeline.treefacts import read_kustomization

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR, _INT, _BOOL, _NULL = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool",
                            "tag:yaml.org,2002:null")
_SEQ, _MAP = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"
_DECIMAL = re.compile(r"[-+]?(0|[1-9][0-9]*)\Z")
_BOOLEAN = re.compile(r"(true|True|TRUE|false|False|FALSE)\Z")
_NULLS = re.compile(r"(null|Null|NULL|~|)\Z")
_NUMBER_LIKE = re.compile(r"[-+]?\.?[0-9]")
_LOCAL_CONFIG = "config.kubernetes.io/local-config"


class _NotPlain(Exception):
    """Something kustomize would read, change or refuse differently: let kustomize render."""


def plain_manifests(directory: Path, kustomization: dict | None = None) -> str | None:
    """The stack's manifests as kustomize would emit them, read directly; None when kustomize must run.
    `kustomization`: the folder's kustomization as the caller parsed it (a tree's facts parse each Git blob
    once); read from the disk when not given."""
    texts: list[str] = []
    seen: set[tuple] = set()
    root = directory.resolve()
    try:
        for path in _resource_files(directory, kustomization if kustomization is not None else
                                    read_kustomization(directory)):
            text, documents = _composed(path)
            for document in documents:
                _check_node(document)
                _check_identity(document, seen)
            text = _with_sources(text, documents, path.relative_to(root).as_posix())
            texts.append(text if text.endswith("\n") else text + "\n")
    except (_NotPlain, RecursionError):
        return None
    return "".join(f"---\n{text}" for text in texts)


def _with_sources(text: str, documents: list[yaml.Node], relative: str) -> str:
    """The file's text with a comment naming the file (`objects.SOURCE_COMMENT`) above each document that
    starts a line: kustomize's output names files only with the user's `buildMetadata: [originAnnotations]`,
    so without it no error, plan line or violation could say which file an object came from. A comment
    changes no object. Only where YAML's line count is the count of `\\n` (no `\\r`, NEL, LS or PS in the file)."""
    if "\n" in relative or any(mark in text for mark in ("\r", "\x85", "\u2028", "\u2029")):
        return text
    lines = text.split("\n")
    starts = {d.start_mark.line for d in documents if d.start_mark.column == 0}
    comment = f"{SOURCE_COMMENT}{relative}\n"
    return "\n".join(comment + line if number in starts else line for number, line in enumerate(lines))


def _resource_files(directory: Path, kustomization: dict | None) -> list[Path]:
    if not isinstance(kustomization, dict) or set(kustomization) - {"apiVersion", "kind", "resources"}:
        raise _NotPlain()
    if kustomization.get("kind", "Kustomization") != "Kustomization":
        raise _NotPlain()
    root = directory.resolve()
    files = []
    for entry in kustomization.get("resources") or []:
        if not isinstance(entry, str) or not entry.endswith((".yaml", ".yml")):
            raise _NotPlain()
        path = (directory / entry).resolve()
        if not path.is_file() or not path.is_relative_to(root):
            raise _NotPlain()
        files.append(path)
    return files


def _composed(path: Path) -> tuple[str, list[yaml.Node]]:
    try:
        text = path.read_text()
        documents = [d for d in yaml.compose_all(text, Loader=_Loader) if d is not None and d.tag != _NULL]
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        raise _NotPlain() from None
    if any(line.startswith("%") for line in text.splitlines()):
        raise _NotPlain()  # a YAML directive would apply to the concatenation differently
    return text, documents


def _check_node(node: yaml.Node) -> None:
    if isinstance(node, yaml.ScalarNode):
        _check_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _NotPlain()
        for item in node.value:
            _check_node(item)
    elif isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _NotPlain()
        keys = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _STR or key.value in keys or key.value == "<<":
                raise _NotPlain()
            _check_scalar(key)
            keys.add(key.value)
            _check_node(value)


def _check_scalar(node: yaml.ScalarNode) -> None:
    if node.style:  # quoted or block (plain is None, or "" from libyaml): a string in both unless tagged
        if node.tag != _STR:
            raise _NotPlain()
        return
    value = node.value
    if node.tag == _STR:
        if _NUMBER_LIKE.match(value):
            raise _NotPlain()
    elif not ((node.tag == _INT and _DECIMAL.match(value)) or (node.tag == _BOOL and _BOOLEAN.match(value))
              or (node.tag == _NULL and _NULLS.match(value))):
        raise _NotPlain()


def _check_identity(document: yaml.Node, seen: set[tuple]) -> None:
    """An object kustomize passes through unchanged, and the first with its identity."""
    fields, metadata_node = _scalars(document), _field(document, "metadata")
    metadata = _scalars(metadata_node)
    kind, api_version, name = fields.get("kind"), fields.get("apiVersion"), metadata.get("name")
    if not (kind and api_version and name) or kind.endswith("List"):
        raise _NotPlain()
    if _LOCAL_CONFIG in _scalars(_field(metadata_node, "annotations")):
        raise _NotPlain()
    identity = (group_of(api_version), kind, metadata.get("namespace"), name)
    if identity in seen:
        raise _NotPlain()
    seen.add(identity)


def _field(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        raise _NotPlain()
    return next((value for k, value in node.value if k.value == key), None)


def _scalars(node: yaml.Node | None) -> dict[str, str]:
    """A mapping's string values by key ({} for an absent one); anything else there is not plain."""
    if node is None:
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _NotPlain()
    return {k.value: v.value for k, v in node.value if isinstance(v, yaml.ScalarNode) and v.tag == _STR}
