"""The package's layers hold: a module imports only from its own layer or the layers below it.

cli -> daemon -> pipeline -> policy -> kube -> shared (config, results, errors, logs, objects, graph, retrying).
Read from the source with `ast`, so function-level (lazy) imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "reconciler"
LAYERS = ["shared", "kube", "policy", "pipeline", "daemon", "cli"]


def layer_of(module: str) -> str:
    """`reconciler.pipeline.plan` -> pipeline; `reconciler.config` (or the package itself) -> shared."""
    parts = module.split(".")
    if module == "reconciler.__main__":
        return "cli"  # `python -m reconciler` is the command's entry point
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "shared"


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def reconciler_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            target = next((n for n in reversed(names) if n.split(".")[-1] in LAYERS), node.module)
            found.append((node.lineno, target if node.module == "reconciler" else node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "reconciler" or name.startswith("reconciler.")]


def all_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_layer_named_in_the_architecture_exists_as_a_package() -> None:
    for layer in LAYERS[1:]:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_imports_nothing_from_a_layer_above_it(path: Path) -> None:
    own = LAYERS.index(layer_of(module_name(path)))
    upward = [f"line {line}: {name} ({layer_of(name)})" for line, name in reconciler_imports(path)
              if LAYERS.index(layer_of(name)) > own]

    assert upward == [], f"{module_name(path)} ({LAYERS[own]}) imports from a layer above it: {upward}"


def test_the_layer_check_sees_an_upward_import() -> None:
    assert layer_of("reconciler.daemon.service") == "daemon"
    assert layer_of("reconciler.results") == "shared"
    assert LAYERS.index(layer_of("reconciler.cli.output")) > LAYERS.index(layer_of("reconciler.pipeline.engine"))


@pytest.mark.parametrize("path", sorted((PACKAGE / "pipeline").glob("*.py")), ids=lambda p: p.name)
def test_no_stage_of_the_pipeline_imports_the_engine_that_wires_it(path: Path) -> None:
    """The engine imports the stages; the stages type against pipeline.context.EngineView, never the engine."""
    if path.name == "engine.py":
        return
    assert "reconciler.pipeline.engine" not in [name for _, name in reconciler_imports(path)], path.name
