"""Each object's file for an error message, when the render could not say it.

kustomize names an object's file only when the kustomization asks for origin annotations
(`buildMetadata: [originAnnotations]`), and most repositories do not. Asking in every build doubled the
kustomize worker's CPU and took the fleet push's p95 from about 8 s to 10.5 s, so the render does not. When a
stack's error has to name an object (the API server rejected its dry run), the stack is built once more,
asking for them: in a copy of the commit's exported tree whose files are hard links, with the stack's
kustomization replaced by a new file there (the export and the trees that share its files never change),
then thrown away. One build per failing stack, never in a steady state.

The key is added by appending one line, never by re-writing the YAML (PyYAML would re-spell kustomize's YAML
1.2 values), and only when the kustomization reads back as the same mapping plus the key; a kustomization
that sets `buildMetadata` itself is built as written (kustomize honours it only at the root).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from reconciler.errors import ReconcilerError
from reconciler.files import write_whole
from reconciler.objects import ObjectId, parse_objects
from reconciler.pipeline.render import run_kustomize
from reconciler.pipeline.treefacts import KUSTOMIZATION_FILES

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ASK = "buildMetadata: [originAnnotations]\n"


def object_files(tree: Path, stack_path: str, stack: str) -> dict[ObjectId, str]:
    """{object: its file in the repository} of the stack rendered from `tree`; {} when it cannot be told."""
    try:
        with tempfile.TemporaryDirectory(prefix=".locate-", dir=tree.parent) as scratch:
            copy = Path(scratch) / "tree"
            shutil.copytree(tree, copy, symlinks=True, copy_function=os.link)  # links, as `cp -al`, anywhere
            if not ask_for_origins(copy / stack_path):
                return {}
            text = run_kustomize(copy / stack_path, stack, where=stack_path)
        return {o.id: o.source_file for o in parse_objects(text, stack=stack, base_dir=stack_path) if o.source_file}
    except (OSError, shutil.Error, ReconcilerError):
        return {}


def ask_for_origins(directory: Path) -> bool:
    """Add the origin annotations to the kustomization of `directory` (a new file) where that is safe;
    whether it asks for them now."""
    path = next((directory / name for name in KUSTOMIZATION_FILES if (directory / name).is_file()), None)
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
        return write_whole(path, asked)  # a new file renamed over it: a tree hard-linked to the old one keeps it
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False

