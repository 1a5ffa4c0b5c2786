"""The stack DAG: waves run independent stacks together; a failure blocks exactly its dependents."""

from __future__ import annotations

import pytest

from reconciler.graph import GraphError, blockers, dependents, find_cycle, waves

PLATFORM = {"gateway": [], "discovery": ["gateway"], "monitoring": ["discovery"], "data": ["monitoring"],
            "application": ["data"]}
DIAMOND = {"base": [], "left": ["base"], "right": ["base"], "top": ["left", "right"], "alone": []}


def test_a_chain_runs_one_stack_per_wave() -> None:
    assert waves(PLATFORM) == [["gateway"], ["discovery"], ["monitoring"], ["data"], ["application"]]


def test_independent_stacks_share_a_wave() -> None:
    assert waves(DIAMOND) == [["alone", "base"], ["left", "right"], ["top"]]


def test_a_failure_blocks_transitive_dependents_only() -> None:
    assert dependents(DIAMOND, "left") == {"top"}
    assert dependents(DIAMOND, "base") == {"left", "right", "top"}
    assert blockers(DIAMOND, "top", failed={"right"}) == ["right"]
    assert blockers(DIAMOND, "alone", failed={"base"}) == []


def test_a_cycle_is_found_as_a_path() -> None:
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_waves_refuse_a_cycle() -> None:
    with pytest.raises(GraphError, match="cycle"):
        waves({"a": ["b"], "b": ["a"]})
