"""Planning an existing object on plain data: a verdict is worked out once per manifest, live version and
recorded hash."""

from __future__ import annotations

import pytest

from reconciler.objects import K8sObject
from reconciler.pipeline import plan
from reconciler.pipeline.ownership import Ownership
from reconciler.results import Action

OWNER = Ownership(env="dev", stack="app")


def _live(version: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": value},
            "metadata": {"name": "a", "namespace": "ns", "uid": "u-1", "resourceVersion": version}}


@pytest.fixture()
def compared(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The live objects the planner compared a manifest with."""
    seen: list[dict] = []
    original = plan.compare
    monkeypatch.setattr(plan, "compare", lambda desired, live: seen.append(live) or original(desired, live))
    return seen


def _desired() -> K8sObject:
    return K8sObject({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"},
                      "data": {"v": "1"}})


def test_an_object_planned_again_against_the_same_live_version_keeps_its_verdict_without_comparing_again(
        compared: list[dict]) -> None:
    obj = _desired()
    first = plan._plan_existing(obj, _live("7", "1"), "h", OWNER)
    first.action, first.fields = Action.UPDATE, [None]  # settled further by a dry run: not the next plan's

    again = plan._plan_existing(obj, _live("7", "1"), "h", OWNER)

    assert len(compared) == 1
    assert again.action is Action.UNCHANGED and again.fields == [] and again is not first


def test_a_new_live_version_or_recorded_hash_is_planned_anew(compared: list[dict]) -> None:
    obj = _desired()
    plan._plan_existing(obj, _live("7", "1"), "h", OWNER)

    changed = plan._plan_existing(obj, _live("8", "2"), "h", OWNER)
    plan._plan_existing(obj, _live("8", "2"), "other", OWNER)

    assert len(compared) == 3
    assert changed.action is Action.UPDATE and [f.path for f in changed.fields] == ["data.v"]
