"""A stack's history (pure logic on plain data): one entry per commit, bounded, and the rollback target it gives."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from reconciler.pipeline.history import RollbackError, add_entry, last_healthy_commit, mark_rolled_back, was_rolled_back
from reconciler.pipeline.pins import Pin, Pins, parse_pins
from reconciler.results import CommitInfo, StackResult, StackState


def _commit(sha: str, message: str = "change") -> CommitInfo:
    return CommitInfo(sha=sha * 40 if len(sha) == 1 else sha, author="Ann <ann@example.test>", message=message,
                      committed_at=datetime(2026, 11, 1, tzinfo=timezone.utc))


def _result(state: StackState, healthy: bool | None) -> StackResult:
    return StackResult(stack="app", state=state, wave=0, healthy=healthy)


def _entry(sha: str, state: str = "applied", healthy: bool | None = True) -> dict:
    return {"commit": sha * 40, "result": state, "healthy": healthy}


def test_a_pass_at_a_new_commit_adds_the_newest_entry() -> None:
    history = add_entry([], _commit("a"), _result(StackState.APPLIED, True), limit=10)
    history = add_entry(history, _commit("b", "second"), _result(StackState.FAILED, False), limit=10)

    assert [(e["commit"][0], e["result"], e["healthy"]) for e in history] == [("b", "failed", False), ("a", "applied", True)]
    assert history[0]["message"] == "second" and history[0]["author"] == "Ann <ann@example.test>" and history[0]["at"]


def test_a_steady_state_pass_at_the_same_commit_changes_nothing() -> None:
    history = add_entry([], _commit("a"), _result(StackState.APPLIED, True), limit=10)

    again = add_entry(history, _commit("a"), _result(StackState.UNCHANGED, True), limit=10)

    assert again is history


def test_a_changed_outcome_at_the_same_commit_updates_that_entry() -> None:
    history = add_entry([], _commit("a"), _result(StackState.APPLIED, True), limit=10)

    again = add_entry(history, _commit("a"), _result(StackState.FAILED, False), limit=10)

    assert len(again) == 1 and again[0]["result"] == "failed" and again[0]["healthy"] is False


def test_the_history_keeps_only_the_last_n_commits_and_cuts_long_messages() -> None:
    history: list[dict] = []
    for index in range(15):
        history = add_entry(history, _commit(f"{index:040x}", "m" * 500), _result(StackState.APPLIED, True), limit=10)

    assert len(history) == 10 and history[0]["commit"] == f"{14:040x}" and len(history[0]["message"]) == 120


def test_blocked_and_planned_stacks_write_no_history() -> None:
    for state in (StackState.BLOCKED, StackState.PLANNED):
        assert add_entry([], _commit("a"), _result(state, None), limit=10) == []


def test_the_rollback_target_is_the_newest_healthy_commit_before_the_current_one() -> None:
    history = [_entry("c", "failed", False), _entry("b"), _entry("a")]

    assert last_healthy_commit({"app": history}, "app") == "b" * 40


def test_a_healthy_current_commit_rolls_back_to_the_one_before() -> None:
    assert last_healthy_commit({"app": [_entry("b"), _entry("a")]}, "app") == "a" * 40


def test_the_target_must_be_healthy_for_the_dependents_too() -> None:
    histories = {"app": [_entry("c", "failed", False), _entry("b"), _entry("a")],
                 "edge": [_entry("b", "failed", False), _entry("a")]}

    assert last_healthy_commit(histories, "app") == "a" * 40


def test_a_dependent_that_never_applied_a_commit_does_not_rule_it_out() -> None:
    histories = {"app": [_entry("c", "failed", False), _entry("b")], "edge": [_entry("a")]}

    assert last_healthy_commit(histories, "app") == "b" * 40


@pytest.mark.parametrize("history", [[], [_entry("a")], [_entry("b", "failed", False), _entry("a", "failed", False)]],
                         ids=["no history", "only the current commit", "never healthy"])
def test_without_a_healthy_earlier_commit_there_is_no_target(history: list[dict]) -> None:
    with pytest.raises(RollbackError):
        last_healthy_commit({"app": history}, "app")


def test_a_commit_is_rolled_back_from_once() -> None:
    history = [_entry("b", "failed", False), _entry("a")]

    marked = mark_rolled_back(history, "b" * 40, "a" * 40)

    assert was_rolled_back(marked, "b" * 40) and not was_rolled_back(history, "b" * 40)


def test_pins_survive_a_round_trip_and_unreadable_pins_are_none() -> None:
    pins = Pins(head="h" * 40, stacks={"app": Pin("a" * 40, "2026-11-29T10:00:00+00:00", "alice", "bad deploy", "b" * 40)})

    assert parse_pins(pins.to_json()) == pins
    assert not parse_pins("{not json") and not parse_pins(None)
    assert pins.revisions() == {"a" * 40: ["app"]}
