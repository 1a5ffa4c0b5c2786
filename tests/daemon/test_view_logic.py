"""What the status page's views are built from, on plain data: diffs of fields, the object filters,
plans and previews waiting beside passes, and a run's event stream."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

from helpers import wait_for
from reconciler.config import StackConfig
from reconciler.daemon.alerts import EnvState
from reconciler.daemon.events import run_progress
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.objects import counts
from reconciler.daemon.runs import Run, RunBook, RunState
from reconciler.daemon.status import stack_status
from reconciler.daemon.worker import MAX_READS, EnvWorker
from reconciler.pipeline.object_view import MAX_VALUE_CHARS, ObjectRow, unified_diff
from reconciler.results import FieldChange, StackResult, StackState


def test_a_drift_diff_puts_gits_value_left_and_the_live_one_right() -> None:
    text = unified_diff("core/ConfigMap/ns/a", [FieldChange("data.value", "v1", "edited")])

    assert "-data.value: v1" in text and "+data.value: edited" in text
    assert text.splitlines()[:2] == ["--- a/core/ConfigMap/ns/a\tgit", "+++ b/core/ConfigMap/ns/a\tlive"]


def test_a_plan_diff_puts_the_live_value_left_and_gits_right() -> None:
    text = unified_diff("core/ConfigMap/ns/a", [FieldChange("data.value", "v2", "v1")], "live", "git",
                        desired_first=False)

    assert "-data.value: v1" in text and "+data.value: v2" in text


def test_a_masked_secret_value_that_differs_still_shows_as_a_difference_naming_each_side() -> None:
    text = unified_diff("core/Secret/ns/db", [FieldChange("data.password", "***", "***")])

    assert "-data.password: *** (masked: the git value)" in text
    assert "+data.password: *** (masked: the live value, which differs)" in text


def test_a_huge_value_is_cut_in_the_diff_and_says_how_long_it_was() -> None:
    huge = {"blob": "x" * 50 + "\n" + "y" * (MAX_VALUE_CHARS * 2)}
    text = unified_diff("core/ConfigMap/ns/big", [FieldChange("data", huge, None)])

    assert len(text) < MAX_VALUE_CHARS + 2_000
    assert "(cut:" in text and "characters in all)" in text


def test_a_field_git_sets_and_the_cluster_lacks_reads_not_set() -> None:
    text = unified_diff("apps/Deployment/ns/web", [FieldChange("spec.replicas", 3, None)])

    assert "-spec.replicas: 3" in text and "+spec.replicas: (not set)" in text


def _row(name: str, health: str = "healthy", drift: str = "", violations: int = 0) -> ObjectRow:
    return ObjectRow(id=f"core/ConfigMap/ns/{name}", kind="ConfigMap", namespace="ns", name=name, group="",
                     health=health, drift=drift, violations=[{"rule": "r"}] * violations)


def test_the_filters_count_unhealthy_drifted_and_violating_objects() -> None:
    rows = [_row("a"), _row("b", "progressing"), _row("c", "degraded", "modified"), _row("d", "missing"),
            _row("e", "not applied", violations=2), _row("f", drift="modified")]

    found = counts(rows)

    assert found["all"] == 6 and found["unhealthy"] == 3 and found["drifted"] == 2 and found["violations"] == 1
    assert found["healthy"] == 2 and found["not applied"] == 1 and found["missing"] == 1


def _worker(release: threading.Event, ran: list[str]) -> EnvWorker:
    def execute(run: Run) -> None:
        ran.append(run.action)
        release.wait(10)
        run.state = RunState.SUCCEEDED

    return EnvWorker("env", execute, RunBook(50), Metrics())


def test_a_plan_asked_for_while_a_sync_waits_leaves_the_sync_queued_and_runs_after_it() -> None:
    release, ran = threading.Event(), []
    worker = _worker(release, ran)
    worker.start()
    try:
        worker.request("manual")  # running, held by `release`
        wait_for(lambda: ran, timeout_s=10, what="the first pass to start")
        queued = worker.request("poll")
        plan = worker.request("page", action="plan")
        release.set()
        assert worker.wait_idle(10)
    finally:
        worker.stop(5)

    assert queued.state is not RunState.CANCELLED and plan.state is RunState.SUCCEEDED
    assert ran == ["sync", "sync", "plan"]


def test_reads_beyond_the_waiting_line_are_refused_saying_why() -> None:
    release, ran = threading.Event(), []
    worker = _worker(release, ran)
    worker.start()
    try:
        worker.request("manual")
        wait_for(lambda: ran, timeout_s=10, what="the first pass to start")
        waiting = [worker.request("page", action="preview", options={"revision": "b"}) for _ in range(MAX_READS)]
        refused = worker.request("page", action="plan")
        release.set()
        assert worker.wait_idle(10)
    finally:
        worker.stop(5)

    assert all(run.state is RunState.SUCCEEDED for run in waiting)
    assert refused.state is RunState.CANCELLED and "already wait" in refused.message


def _collect(run: Run, stop_after: int) -> list[str]:
    daemon = SimpleNamespace(stopping=False)

    async def gone() -> bool:
        return False

    async def main() -> list[str]:
        sent = []
        async for message in run_progress(daemon, run, gone):  # type: ignore[arg-type]
            sent.append(message)
            if len(sent) >= stop_after or message.startswith("event: done"):
                break
        return sent

    return asyncio.run(main())


def _progress(run: Run, count: int) -> None:
    for _ in range(count):
        run.events += 1
        run.progress = (run.progress + [{"seq": run.events, "message": f"event {run.events}"}])[-500:]


def test_a_run_stream_sends_every_kept_progress_event_once_then_the_state_then_done() -> None:
    run = Run(env="env", stack=None, sources=["manual"])
    _progress(run, 3)
    run.state = RunState.SUCCEEDED

    sent = _collect(run, 10)

    assert [m.split("\n")[0] for m in sent] == ["event: progress"] * 3 + ["event: state", "event: done"]
    assert '"message":"event 1"' in sent[0] and '"message":"event 3"' in sent[2]


def test_a_run_stream_past_the_500_kept_events_sends_the_newest_without_repeating_any() -> None:
    run = Run(env="env", stack=None, sources=["manual"])
    _progress(run, 700)
    run.state = RunState.SUCCEEDED

    sent = _collect(run, 1000)
    progress = [m for m in sent if m.startswith("event: progress")]

    assert len(progress) == 500 and '"message":"event 201"' in progress[0] and '"message":"event 700"' in progress[-1]



def test_a_stacks_status_entry_follows_its_next_result_and_drift_and_is_not_rebuilt_in_between() -> None:
    state = EnvState(stack_results={"web": StackResult("web", StackState.APPLIED, 0, healthy=True)})
    daemon = SimpleNamespace(states={"prod": state})
    stack = StackConfig(name="web", path="stacks/web")

    first = stack_status(daemon, "prod", stack, {})
    again = stack_status(daemon, "prod", stack, {})
    drifted = stack_status(daemon, "prod", stack, {"web": 2})
    state.stack_results["web"] = StackResult("web", StackState.FAILED, 0, reason="boom")
    failed = stack_status(daemon, "prod", stack, {"web": 2})

    assert again is first and first["display_state"] == "applied"
    assert (drifted["display_state"], drifted["drift_count"]) == ("drifted", 2)
    assert (failed["state"], failed["reason"]) == ("failed", "boom")
