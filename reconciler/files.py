"""Files the reconciler keeps in its cache folder, written whole or not at all."""

from __future__ import annotations

from pathlib import Path


def write_whole(path: Path, text: str) -> bool:
    """Write `text` to `path` through a hidden partial file renamed into place, so a reader never sees half
    of it. Best effort: False, with no partial file left, when it cannot be written (a full disk)."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text)
        partial.replace(path)
        return True
    except OSError:
        partial.unlink(missing_ok=True)
        return False
