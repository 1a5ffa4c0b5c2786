"""Reading a YAML file a user wrote, where anything can be wrong with it.

One place turns every way a file can fail to load (unreadable, not YAML, not UTF-8, nested deeper
than the parser's recursion allows) into a ConfigError naming the file and the fix, so no bad file
ever ends a command with a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import ConfigError

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's scanner when built: several times faster


def load_yaml_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})", fix="save the file as UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}", fix="check the path") from exc
    return load_yaml_text(text, str(path))


def load_yaml_text(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {yaml_problem(exc)}", fix="fix the YAML syntax") from exc
    except RecursionError as exc:
        raise ConfigError(f"{where}: nested too deeply to read", fix="flatten the YAML: no real file nests this deep") from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message in one line: the problem and where it is (its own text spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())
