"""Asking kustomize to name each object's file: `buildMetadata: [originAnnotations]` added to a stack's
kustomization in its exported tree before the build.

Why: kustomize's output says which file an object came from only when the kustomization asks for origin
annotations, and most repositories do not. Without it, an object the API server rejects, a plan line or a
policy violation named no file (`core/Service/web/bad: ... 422`), though the guarantee is an error naming the
file. The parse (`objects.parse_objects`) turns the annotation into the object's file and removes it: no
object changes.

The exported tree belongs to the render: the file is replaced (a new file renamed into place), never
written through, so a tree that shares it by hard link (`treedelta`) keeps its own. The key is added by
appending one line, never by re-writing the YAML (PyYAML would re-spell kustomize's YAML 1.2 values), and only
when the kustomization read back with it is the same mapping plus the key; a kustomization that sets
`buildMetadata` itself is left as the user wrote it (kustomize honours it only at the root).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_ASK = "buildMetadata: [originAnnotations]\n"


def ask_for_origins(directory: Path) -> bool:
    """Add the origin annotations to the kustomization of `directory` where that is safe; whether it asks
    for them now."""
    path = next((directory / name for name in KUSTOMIZATION_NAMES if (directory / name).is_file()), None)
    if path is None:
        return False
    try:
        text = path.read_text()
        data = yaml.load(text, Loader=_Loader)
        if not isinstance(data, dict) or "buildMetadata" in data:
            return isinstance(data, dict) and "originAnnotations" in (data.get("buildMetadata") or [])
        asked = text + ("" if text.endswith("\n") or not text else "\n") + _ASK
        if yaml.load(asked, Loader=_Loader) != {**data, "buildMetadata": ["originAnnotations"]}:
            return False
        _replace(path, asked)
        return True
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False


def _replace(path: Path, text: str) -> None:
    """A new file renamed over `path`: readers see the old file or the new one, and another tree linked to
    the old one keeps it. A partial file of its own, so two renders of one tree never share one."""
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(partial, path.stat().st_mode & 0o777)
        os.replace(partial, path)
    except OSError:
        Path(partial).unlink(missing_ok=True)
        raise
