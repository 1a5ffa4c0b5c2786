"""Our own writes coming back through the watches (kube.echoes), on plain data: what counts as a change and
when a watch has caught up with our writes."""

from __future__ import annotations

from reconciler.kube.echoes import WriteEchoes

LABEL = "reconciler.healthflow.io/owner"
KEY = ("v1", "ConfigMap", "apps")


def _obj(name: str, version: int, owner: str) -> dict:
    return {"metadata": {"name": name, "resourceVersion": str(version), "labels": {LABEL: owner}}}


def test_our_own_write_coming_back_is_not_a_change_and_another_version_is() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.noted(KEY, "a", 7, "env.app")

    echoes.count("MODIFIED", KEY, "a", _obj("a", 7, "env.app"), "env.app")
    assert echoes.changes("env.app") == 0
    echoes.count("MODIFIED", KEY, "a", _obj("a", 8, "env.app"), "env.app")
    assert echoes.changes("env.app") == 1


def test_an_echo_that_arrives_before_its_write_is_noted_is_taken_back() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.count("ADDED", KEY, "a", _obj("a", 7, "env.app"), "env.app")
    assert echoes.changes("env.app") == 1

    echoes.noted(KEY, "a", 7, "env.app")

    assert echoes.changes("env.app") == 0


def test_a_noted_write_of_another_version_does_not_take_an_earlier_echo_back() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.count("MODIFIED", KEY, "a", _obj("a", 7, "env.app"), "env.app")

    echoes.noted(KEY, "a", 9, "env.app")

    assert echoes.changes("env.app") == 1


def test_a_write_not_delivered_yet_holds_back_lists_of_its_owner_only() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.noted(KEY, "a", 7, "env.first")
    held = {"a": _obj("a", 5, "env.first")}

    assert not echoes.caught_up(KEY, held, "env.first")
    assert echoes.caught_up(KEY, held, "env.second")
    assert echoes.caught_up(("v1", "ConfigMap", "other"), held, "env.first")


def test_a_write_held_at_its_version_or_later_is_caught_up_and_forgotten() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.noted(KEY, "a", 7, "env.first")

    assert echoes.caught_up(KEY, {"a": _obj("a", 8, "env.first")}, "env.first")
    assert echoes.caught_up(KEY, {"a": _obj("a", 5, "env.first")}, "env.first")  # forgotten once delivered


def test_a_deletion_ends_a_pending_write() -> None:
    echoes = WriteEchoes(LABEL)
    echoes.noted(KEY, "a", 7, "env.first")

    echoes.count("DELETED", KEY, "a", None, "env.first")

    assert echoes.caught_up(KEY, {}, "env.first")
    assert echoes.changes("env.first") == 1
