"""The object model: one rendered Kubernetes object, its identity, and the order objects apply in.

Objects stay plain dicts (the manifest as kustomize printed it) wrapped with the few facts the
pipeline needs everywhere: identity, owning stack, and the repository file it came from. Keeping
the manifest a dict means every stage (policy, diff, apply) sees exactly what Git says.
"""

from __future__ import annotations

import json

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import yaml

from reconciler.errors import ManifestError

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's loader when PyYAML was built with it: parsing rendered output is most of a render's time."""

ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
"""Set by kustomize when a kustomization has `buildMetadata: [originAnnotations]`; we read the
source file from it and strip it before anything reaches the cluster."""
SOURCE_COMMENT = "# reconciler.healthflow.io/source: "
"""A comment line `pipeline.plain` writes above each document it passes on, naming its file (relative to the
stack's folder) as kustomize's origin annotation would; read only from a text of one document."""

# Kinds that other objects need to exist first; everything else applies after them.
_APPLY_ORDER: tuple[str, ...] = (
    "CustomResourceDefinition",
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ResourceQuota",
    "LimitRange",
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "IngressClass",
    "NetworkPolicy",
    "PersistentVolumeClaim",
    "Service",
    "PodDisruptionBudget",
    "DaemonSet",
    "Deployment",
    "StatefulSet",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "Ingress",
)
_UNKNOWN_KIND_RANK = len(_APPLY_ORDER)

CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset(
    {
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
        "IngressClass",
        "PersistentVolume",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
    }
)


@dataclass(frozen=True, order=True)
class ObjectId:
    """`group/kind/namespace/name`: the identity the whole pipeline keys on."""

    group: str
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        """Made once per id (the inventory's keys: a pass asks every id of its environment for each stack)."""
        text = self.__dict__.get("_text")
        if text is None:
            text = f"{self.group or 'core'}/{self.kind}/{self.namespace or '-'}/{self.name}"
            object.__setattr__(self, "_text", text)
        return text

    def __hash__(self) -> int:
        """Of the four fields, as the dataclass's would be, made once per id (ids key most of the pass's maps)."""
        value = self.__dict__.get("_hash")
        if value is None:
            value = hash((self.group, self.kind, self.namespace, self.name))
            object.__setattr__(self, "_hash", value)
        return value

    def __getstate__(self) -> dict[str, str]:
        """The four fields only: a string's hash differs from one process to the next."""
        return {name: self.__dict__[name] for name in ("group", "kind", "namespace", "name")}

    @classmethod
    def parse(cls, text: str) -> "ObjectId":
        group, kind, namespace, name = text.split("/", 3)
        return cls("" if group == "core" else group, kind, "" if namespace == "-" else namespace, name)


def group_of(api_version: str) -> str:
    """`apps/v1` -> `apps`; `v1` -> `` (the core group)."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def identity(manifest: Mapping[str, Any]) -> ObjectId:
    meta = manifest.get("metadata") or {}
    return ObjectId(
        group=group_of(str(manifest.get("apiVersion", ""))),
        kind=str(manifest.get("kind", "")),
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
    )


@dataclass(frozen=True)
class K8sObject:
    """A desired object as rendered from Git, plus where it came from."""

    manifest: dict[str, Any]
    stack: str = ""
    source_file: str | None = None
    id: ObjectId = field(init=False)
    memo: dict[Any, Any] = field(default_factory=dict, init=False, compare=False, repr=False)
    """Values worked out from the manifest, kept with it: a manifest is never changed once its object exists."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", identity(self.manifest))

    @property
    def kind(self) -> str:
        return self.id.kind

    def encoded(self) -> bytes:
        """The manifest as compact JSON: the body the API server is sent, and the size it judges. Made once
        (a pass sizes the object, dry-runs it and applies it; the memo outlives passes with its render)."""
        data = self.memo.get("json")
        if data is None:
            data = self.memo["json"] = json.dumps(self.manifest, separators=(",", ":")).encode()
        return data

    @property
    def api_version(self) -> str:
        return str(self.manifest["apiVersion"])


def apply_rank(kind: str) -> int:
    try:
        return _APPLY_ORDER.index(kind)
    except ValueError:
        return _UNKNOWN_KIND_RANK


def sort_for_apply(objects: Iterable[K8sObject]) -> list[K8sObject]:
    """CRDs and Namespaces first, workloads after their config, then by identity for determinism."""
    return sorted(objects, key=lambda o: (apply_rank(o.kind), o.id))


def _origin_path(manifest: dict[str, Any]) -> str | None:
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ORIGIN_ANNOTATION)
    if not raw:
        return None
    try:
        origin = yaml.load(raw, Loader=_SafeLoader) or {}
    except yaml.YAMLError:
        return None
    path = origin.get("path") if isinstance(origin, dict) else None
    return str(path) if path else None


def _source_comment(text: str) -> str | None:
    """The file `SOURCE_COMMENT` names in a one-document text, if it has one."""
    at = text.find(SOURCE_COMMENT)
    if at < 0 or (at > 0 and text[at - 1] != "\n"):
        return None
    end = text.find("\n", at)
    return text[at + len(SOURCE_COMMENT):end if end >= 0 else None].strip() or None


def _strip_origin(manifest: dict[str, Any]) -> None:
    meta = manifest.get("metadata") or {}
    annotations = meta.get("annotations")
    if annotations and ORIGIN_ANNOTATION in annotations:
        del annotations[ORIGIN_ANNOTATION]
        if not annotations:
            del meta["annotations"]


def validate_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """Reject documents the API server would reject for lack of identity, naming where they came from."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: a document is not a mapping", fix="each YAML document must be one Kubernetes object")
    for key in ("apiVersion", "kind"):
        if not manifest.get(key):
            raise ManifestError(f"{where}: an object has no {key}", fix=f"add `{key}` to the object")
        if not isinstance(manifest[key], str):
            raise ManifestError(f"{where}: an object's {key} is not a string", fix=f"write `{key}` as a string")
    if not isinstance(manifest.get("metadata") or {}, dict):
        raise ManifestError(f"{where}: {manifest['kind']}'s metadata is not a mapping",
                            fix="write metadata as a mapping with a name")
    if not (manifest.get("metadata") or {}).get("name"):
        raise ManifestError(
            f"{where}: {manifest.get('kind')} has no metadata.name", fix="give the object a metadata.name"
        )
    return manifest


def parse_objects(text: str, *, stack: str, base_dir: str = "") -> list[K8sObject]:
    """Parse kustomize output into objects, lifting kustomize's origin annotation into `source_file`.

    `base_dir` is the stack's path in the repository; origin paths are relative to it.
    """
    where = f"stack {stack!r}"
    try:
        documents = [d for d in yaml.load_all(text, Loader=_SafeLoader) if d is not None]
    except yaml.YAMLError as exc:
        raise ManifestError(f"{where}: rendered output is not valid YAML: {exc}", fix="check the stack's manifests") from exc
    objects = []
    commented = _source_comment(text) if len(documents) == 1 else None
    for document in documents:
        manifest = validate_manifest(document, where)
        origin = _origin_path(manifest) or commented
        _strip_origin(manifest)
        source = _join_repo_path(base_dir, origin) if origin else _chart_of(manifest, base_dir)
        objects.append(K8sObject(manifest=manifest, stack=stack, source_file=source))
    return objects


Documents = dict[bytes, tuple[K8sObject, ...]]
"""Objects parsed from one stack's render, by the digest of each document's text."""


def parse_reusing(text: str, known: Documents, *, stack: str, base_dir: str = "") -> tuple[list[K8sObject], Documents]:
    """As `parse_objects`, but a document whose text `known` (an earlier parse of the same stack and
    `base_dir`) holds is not parsed again: a push that changes one object of a stack parses that one.
    Returns the objects and the documents of this text. A document twice in one text is parsed twice
    (two objects, so the duplicate is still found); any error is raised as the whole text gives it."""
    pieces = split_documents(text)
    if pieces is None:
        return parse_objects(text, stack=stack, base_dir=base_dir), {}
    documents: Documents = {}
    objects: list[K8sObject] = []
    try:
        for piece in pieces:
            digest = hashlib.blake2b(piece.encode(), digest_size=16).digest()
            parsed = known.get(digest) if digest not in documents else None
            if parsed is None:
                parsed = tuple(parse_objects(piece, stack=stack, base_dir=base_dir))
            documents[digest] = parsed
            objects += parsed
    except ManifestError:
        parse_objects(text, stack=stack, base_dir=base_dir)  # raises with the line numbers of the whole text
        raise
    return objects, documents


def split_documents(text: str) -> list[str] | None:
    """The text of each YAML document, split at `---` lines; None when the text has a line that begins
    like a marker but is not exactly `---` (`--- |`, `...`, a `%` directive): parse it whole then. A line
    `---` can only be a document start in YAML: a scalar cannot hold one (the scanner ends it there)."""
    pieces: list[str] = []
    lines: list[str] = []
    for line in text.split("\n"):
        if line == "---":
            pieces.append("\n".join(lines))
            lines = []
        elif line.startswith(("---", "...", "%")):
            return None
        else:
            lines.append(line)
    pieces.append("\n".join(lines))
    return [piece + "\n" for piece in pieces if piece.strip()]


def _chart_of(manifest: dict[str, Any], base_dir: str) -> str | None:
    """Where a Helm chart's object comes from, by the `helm.sh/chart` label charts conventionally set:
    a violation or a plan line then names the chart and its version rather than no file at all."""
    labels = (manifest.get("metadata") or {}).get("labels")
    chart = labels.get("helm.sh/chart") if isinstance(labels, dict) else None
    if not chart or not isinstance(chart, str):
        return None
    return f"{base_dir} (Helm chart {chart})" if base_dir else f"Helm chart {chart}"


def _join_repo_path(base_dir: str, relative: str) -> str:
    import posixpath

    return posixpath.normpath(posixpath.join(base_dir, relative)) if base_dir else relative
