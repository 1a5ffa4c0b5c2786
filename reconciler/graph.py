"""The stack dependency graph: validation, waves, and what a failure blocks.

Pure functions on names, so the engine, the config validator and the status page share one truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GraphError(ValueError):
    """Unknown dependency or a cycle; `path` holds the cycle (first node repeated at the end)."""

    def __init__(self, message: str, path: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.path = list(path)


def check_graph(deps: Mapping[str, Sequence[str]]) -> None:
    for stack, needs in deps.items():
        for need in needs:
            if need not in deps:
                raise GraphError(f"stack {stack!r} depends on unknown stack {need!r}")
            if need == stack:
                raise GraphError(f"stack {stack!r} depends on itself", [stack, stack])
    cycle = find_cycle(deps)
    if cycle:
        raise GraphError("dependency cycle: " + " -> ".join(cycle), cycle)


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """A cycle as a path (`a -> b -> a`), or [] — depth-first with colours, deterministic order."""
    colour: dict[str, int] = {}
    stack_path: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = 1
        stack_path.append(node)
        for need in deps.get(node, ()):
            if colour.get(need) == 1:
                return stack_path[stack_path.index(need):] + [need]
            if colour.get(need) is None:
                found = visit(need)
                if found:
                    return found
        stack_path.pop()
        colour[node] = 2
        return []

    for node in sorted(deps):
        if colour.get(node) is None:
            found = visit(node)
            if found:
                return found
    return []


def waves(deps: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Stacks grouped so that every stack's dependencies sit in earlier waves (Kahn's algorithm)."""
    check_graph(deps)
    remaining = {stack: set(needs) for stack, needs in deps.items()}
    done: set[str] = set()
    result: list[list[str]] = []
    while remaining:
        ready = sorted(s for s, needs in remaining.items() if needs <= done)
        result.append(ready)
        done.update(ready)
        for stack in ready:
            del remaining[stack]
    return result


def dependents(deps: Mapping[str, Sequence[str]], stack: str) -> set[str]:
    """Every stack that needs `stack`, directly or through others: what its failure blocks."""
    found: set[str] = set()
    frontier = [stack]
    while frontier:
        current = frontier.pop()
        for other, needs in deps.items():
            if current in needs and other not in found:
                found.add(other)
                frontier.append(other)
    return found


def blockers(deps: Mapping[str, Sequence[str]], stack: str, failed: set[str]) -> list[str]:
    """Which failed stacks block `stack` (direct or transitive dependencies), sorted."""
    return sorted(f for f in failed if stack in dependents(deps, f))
