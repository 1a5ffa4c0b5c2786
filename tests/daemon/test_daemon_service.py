"""The daemon as a service, without a cluster: webhooks, the HTTP API, single-flight scheduling,
backoff, alert de-duplication and delivery, logging, metrics and the status page.

Passes here come from `CannedEngine` (scheduling is what is under test, not applying); everything
else is real: sockets on 127.0.0.1, Git repositories, an HTTP alert receiver, headless Chromium.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.alerts import EnvState
from reconciler.daemon.service import DaemonSettings
from reconciler.daemon.timing import PassTiming
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.notify import Alert, AlertKind, AppriseSink, Notifier, alerts_for_pass, apprise_url
from reconciler.retrying import RetryPolicy
from reconciler.results import PassResult, StackResult, StackState
from reconciler.daemon.webhooks import (
    PushEvent,
    WebhookError,
    github_signature,
    matching_environments,
    normalize_repo_url,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)
from daemon_support import (
    API_TOKEN,
    GITHUB_SECRET,
    GITLAB_TOKEN,
    CannedEngine,
    GatedEngine,
    GitRepo,
    alert_sink,
    github_push,
    http_receiver,
    received_alerts,
    running_daemon,
    write_env,
)


@pytest.fixture()
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo.create(tmp_path / "git")


@pytest.fixture()
def env(tmp_path: Path, repo: GitRepo) -> Any:
    return load_environment(write_env(tmp_path / "env.yaml", repo, [("config", []), ("app", ["config"])]))


def canned(env: Any) -> CannedEngine:
    return CannedEngine(env)


# ---- webhook authentication and parsing (plain data) -------------------------------------------


def test_github_signature_of_the_body_with_our_secret_verifies() -> None:
    body = b'{"ref": "refs/heads/main"}'
    verify_github(GITHUB_SECRET, body, github_signature(GITHUB_SECRET, body))


@pytest.mark.parametrize("header", [None, "", "sha256=" + "0" * 64, github_signature("other-secret", b"{}")])
def test_github_signature_that_does_not_match_is_refused_with_401(header: str | None) -> None:
    with pytest.raises(WebhookError) as refused:
        verify_github(GITHUB_SECRET, b"{}", header)
    assert refused.value.status == 401


def test_github_webhooks_are_refused_when_no_secret_is_configured() -> None:
    with pytest.raises(WebhookError):
        verify_github(None, b"{}", github_signature("", b"{}"))


def test_gitlab_token_must_equal_the_configured_token() -> None:
    verify_gitlab(GITLAB_TOKEN, GITLAB_TOKEN)
    with pytest.raises(WebhookError):
        verify_gitlab(GITLAB_TOKEN, "wrong")


def test_github_push_to_a_branch_names_repository_branch_and_commit() -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "abc", "repository": {
        "clone_url": "https://github.com/o/r.git", "ssh_url": "git@github.com:o/r.git"}}).encode()
    push = parse_github("push", body).push
    assert push == PushEvent("github", ("https://github.com/o/r.git", "git@github.com:o/r.git"), "main", "abc", "")


def test_gitlab_push_hook_is_parsed() -> None:
    body = json.dumps({"ref": "refs/heads/dev", "after": "f00", "project": {
        "git_http_url": "https://gitlab.com/g/p.git"}}).encode()
    assert parse_gitlab("Push Hook", body).push.branch == "dev"


@pytest.mark.parametrize("event,body", [("issues", b"{}"), ("push", b'{"ref": "refs/tags/v1", "repository": {}}')])
def test_events_other_than_branch_pushes_are_ignored(event: str, body: bytes) -> None:
    outcome = parse_github(event, body)
    assert outcome.push is None and outcome.ignored


def test_one_repository_matches_across_url_spellings() -> None:
    spellings = ["https://github.com/Org/Repo.git", "git@github.com:org/repo.git", "ssh://git@github.com/org/repo",
                 "https://user:token@github.com/org/repo/"]
    assert len({normalize_repo_url(u) for u in spellings}) == 1


def test_a_push_triggers_only_environments_watching_that_repository_and_branch() -> None:
    push = PushEvent("github", ("https://github.com/o/r.git",), "main", "abc")
    watched = [("dev", "git@github.com:o/r.git", "main"), ("prod", "git@github.com:o/r.git", "release"),
               ("other", "https://github.com/o/x", "main")]
    assert matching_environments(push, watched) == ["dev"]


# ---- HTTP: webhooks, manual sync, probes --------------------------------------------------------


def _signed(body: bytes, event: str = "push", secret: str = GITHUB_SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": github_signature(secret, body),
            "Content-Type": "application/json"}


def test_a_wrongly_signed_webhook_gets_401_and_starts_no_pass(env: Any, repo: GitRepo) -> None:
    settings = DaemonSettings(poll=False, initial_pass=False)
    with running_daemon([env], canned, settings=settings) as d:
        body = github_push(repo, "abc")
        response = requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body, secret="wrong"))
        assert response.status_code == 401
        assert d.daemon.runbook.recent() == []


def test_a_signed_push_webhook_starts_a_pass_of_the_environment_watching_it(env: Any, repo: GitRepo) -> None:
    settings = DaemonSettings(poll=False, initial_pass=False)
    with running_daemon([env], canned, settings=settings) as d:
        body = github_push(repo, "abc")
        response = requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body))
        assert response.status_code == 202
        [triggered] = response.json()["triggered"]
        assert triggered["env"] == env.name
        wait_for(lambda: d.daemon.runbook.get(triggered["run_id"]).state.done, timeout_s=10, what="the pass")


def test_a_push_webhook_requests_the_passes_of_its_environments_at_the_same_time(tmp_path: Path, repo: GitRepo) -> None:
    """Each request another replica leads is a Lease PATCH: forwarded one after another, 66 of them took
    seconds under a fleet push's load. Here each request waits for the other one: one after another, neither
    would return."""
    envs = [load_environment(write_env(tmp_path / f"{n}.yaml", repo, [("app", [])])) for n in range(2)]
    both = threading.Barrier(2, timeout=10)
    with running_daemon(envs, canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        queue = d.daemon.trigger
        d.daemon.trigger = lambda env, source, *rest: (both.wait(), queue(env, source, *rest))[1]
        body = github_push(repo, "abc")
        response = requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body), timeout=30)

    assert response.status_code == 202
    assert sorted(t["env"] for t in response.json()["triggered"]) == sorted(e.name for e in envs)


def test_the_daemon_answers_other_requests_while_a_push_webhook_is_forwarding(env: Any, repo: GitRepo) -> None:
    """Forwarding writes to API servers; done on the server's event loop, it held up every other request
    (the probes, the status page, other webhooks) for as long as they took."""
    forwarding, answered = threading.Event(), threading.Event()
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        queue = d.daemon.trigger
        d.daemon.trigger = lambda *args: (forwarding.set(), answered.wait(10), queue(*args))[2]
        body = github_push(repo, "abc")
        hook = threading.Thread(target=requests.post, args=(f"{d.base}/hooks/github",),
                                kwargs={"data": body, "headers": _signed(body), "timeout": 30})
        hook.start()
        assert forwarding.wait(10)
        health = requests.get(f"{d.base}/healthz", timeout=5)
        answered.set()
        hook.join(30)

    assert health.status_code == 200


def test_a_replayed_webhook_delivery_runs_nothing(env: Any, repo: GitRepo) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        body = github_push(repo, "abc")
        headers = {**_signed(body), "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
        first = requests.post(f"{d.base}/hooks/github", data=body, headers=headers)
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=10, what="the first pass")
        runs = len(d.daemon.runbook.recent(50))

        again = requests.post(f"{d.base}/hooks/github", data=body, headers=headers)

        assert first.status_code == 202 and len(first.json()["triggered"]) == 1
        assert again.status_code == 202 and again.json()["ignored"] == "duplicate"
        assert len(d.daemon.runbook.recent(50)) == runs


def test_a_captured_push_replayed_with_a_new_delivery_id_runs_nothing(env: Any, repo: GitRepo) -> None:
    """The delivery id header is not signed: replay protection keys on the signed body's ref and commit."""
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        body = github_push(repo, "abc")
        answers = [requests.post(f"{d.base}/hooks/github", data=body,
                                 headers={**_signed(body), "X-GitHub-Delivery": delivery}).json()
                   for delivery in ("delivery-1", "forged-new-id")]
        assert len(answers[0]["triggered"]) == 1 and answers[1]["ignored"] == "duplicate"


def test_a_new_push_after_a_replayed_one_still_runs(env: Any, repo: GitRepo) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        answers = [requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body)).json()
                   for body in (github_push(repo, "abc"), github_push(repo, "abc"), github_push(repo, "def"))]
        assert [a.get("ignored") or "ran" for a in answers] == ["ran", "duplicate", "ran"]


def test_with_a_read_token_the_state_needs_it_and_the_probes_do_not(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False),
                        read_token="reader-secret") as d:
        reads = ["/api/status", f"/api/drift?env={env.name}", "/api/runs"]
        anonymous = [requests.get(f"{d.base}{path}").status_code for path in reads]
        reader = [requests.get(f"{d.base}{path}", headers={"Authorization": "Bearer reader-secret"}).status_code
                  for path in reads]
        wrong = requests.get(f"{d.base}/api/status", headers={"Authorization": "Bearer guess"}).status_code
        probes = [requests.get(f"{d.base}{path}").status_code for path in ("/healthz", "/metrics", "/")]

        assert anonymous == [401, 401, 401] and wrong == 401
        assert reader == [200, 200, 200]
        assert probes == [200, 200, 200]


def test_a_push_to_another_branch_is_ignored(env: Any, repo: GitRepo) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        body = github_push(repo, "abc", branch="feature")
        response = requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body))
        assert response.status_code == 202 and response.json()["triggered"] == []


def test_an_oversized_webhook_body_gets_413(env: Any, repo: GitRepo) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False),
                        max_body_bytes=1024) as d:
        body = b"{" + b" " * 4096 + b"}"
        assert requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body)).status_code == 413


def test_an_unknown_event_is_ignored_with_202(env: Any, repo: GitRepo) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        body = b'{"action": "opened"}'
        response = requests.post(f"{d.base}/hooks/github", data=body, headers=_signed(body, event="issues"))
        assert response.status_code == 202 and "ignored" in response.json()
        assert d.daemon.runbook.recent() == []


def test_a_gitlab_hook_with_a_wrong_token_gets_401(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"}
        assert requests.post(f"{d.base}/hooks/gitlab", data=b"{}", headers=headers).status_code == 401


def test_manual_sync_without_the_token_gets_401(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        assert requests.post(f"{d.base}/api/sync", json={"env": env.name}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert requests.post(f"{d.base}/api/sync", json={"env": env.name}, headers=wrong).status_code == 401


def test_manual_sync_with_the_token_gets_202_and_a_run_that_completes(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        response = requests.post(f"{d.base}/api/sync", json={"env": env.name, "stack": "app"},
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert response.status_code == 202
        url = f"{d.base}/api/runs/{response.json()['run_id']}"
        run = wait_for(lambda: (r := requests.get(url).json())["done"] and r, timeout_s=10, what="run done")
        assert run["state"] == "succeeded"
        assert [s["stack"] for s in run["result"]["stacks"]] == ["app"]


def test_manual_sync_of_an_unknown_environment_gets_404(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        response = requests.post(f"{d.base}/api/sync", json={"env": "nope"},
                                 headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert response.status_code == 404


def test_rollback_and_unpin_without_the_token_get_401_and_queue_nothing(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        for path in ("/api/rollback", "/api/unpin"):
            assert requests.post(f"{d.base}{path}", json={"env": env.name}).status_code == 401
        assert requests.get(f"{d.base}/api/runs").json() == []


def test_rollback_of_an_unknown_stack_or_environment_gets_404(env: Any) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        unknown_stack = requests.post(f"{d.base}/api/rollback", json={"env": env.name, "stack": "nope"}, headers=headers)
        unknown_env = requests.post(f"{d.base}/api/rollback", json={"env": "nope"}, headers=headers)
    assert unknown_stack.status_code == 404 and "no stack 'nope'" in unknown_stack.json()["detail"]
    assert unknown_env.status_code == 404


def test_a_rollback_request_replaces_a_queued_sync_and_is_followed_by_one(env: Any) -> None:
    gated = GatedEngine(canned(env))
    with running_daemon([env], lambda _: gated, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        running = d.daemon.trigger(env.name, "manual")
        gated.entered.acquire(timeout=10)
        queued = d.daemon.trigger(env.name, "webhook:github")
        rollback = d.daemon.request_action(env.name, "rollback", "app", {"by": "test"})
        joined = d.daemon.trigger(env.name, "poll")
        gated.gate.set()
        wait_for(lambda: running.state.done, timeout_s=10, what="the running pass")
    assert queued.state.value == "cancelled" and "replaced by a queued rollback" in queued.message
    assert joined is rollback and rollback.action == "rollback"


def test_remote_sync_follows_the_run_and_exits_zero_on_success(env: Any) -> None:
    from reconciler.cli.remote import remote_sync

    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        out = io.StringIO()
        args = argparse.Namespace(remote=d.base, env=env.name, stack=None, token=API_TOKEN, remote_timeout=30)
        assert remote_sync(args, out) == 0
    assert "accepted" in out.getvalue() and "succeeded" in out.getvalue()


def test_healthz_answers_and_the_openapi_description_lists_the_api(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        assert requests.get(f"{d.base}/healthz").json() == {"status": "ok"}
        paths = requests.get(f"{d.base}/openapi.json").json()["paths"]
        assert {"/api/status", "/api/sync", "/api/runs/{run_id}", "/hooks/github", "/readyz"} <= set(paths)


def test_drift_of_an_unknown_environment_is_404(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        assert requests.get(f"{d.base}/api/drift", params={"env": "nope"}).status_code == 404
        assert requests.get(f"{d.base}/api/drift", params={"env": env.name}).status_code == 200


# ---- scheduling ----------------------------------------------------------------------------------


def test_two_triggers_during_a_running_pass_produce_exactly_one_follow_up_pass(env: Any) -> None:
    engines: list[GatedEngine] = []

    def factory(e: Any) -> GatedEngine:
        engines.append(GatedEngine(CannedEngine(e)))
        return engines[-1]

    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        engine = engines[0]
        first = d.daemon.trigger(env.name, "manual")
        assert engine.entered.acquire(timeout=10), "first pass did not start"
        second = d.daemon.trigger(env.name, "webhook")
        third = d.daemon.trigger(env.name, "poll")
        engine.gate.set()
        wait_for(lambda: d.daemon.workers[env.name].wait_idle(0.1), timeout_s=10, what="passes done")
        assert second.id == third.id != first.id
        assert len(engine.calls) == 2
        assert engine.max_concurrent == 1
        assert second.sources == ["webhook", "poll"]


def test_polling_runs_a_pass_every_interval(tmp_path: Path, repo: GitRepo) -> None:
    env = load_environment(write_env(tmp_path / "e.yaml", repo, [("config", [])], interval="1s"))
    with running_daemon([env], canned, settings=DaemonSettings(jitter_s=0, initial_pass=False)) as d:
        wait_for(lambda: d.daemon.workers[env.name].passes_started >= 2, timeout_s=5, what="two polls")


def test_backoff_doubles_per_failure_up_to_the_maximum() -> None:
    settings = DaemonSettings(backoff_base_s=10, backoff_max_s=60)
    assert [settings.backoff(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]


def test_a_failed_pass_defers_polling_until_the_backoff_retry(env: Any) -> None:
    def failing(e: Any) -> CannedEngine:
        return CannedEngine(e, outcome=lambda: StackState.FAILED)

    settings = DaemonSettings(poll=True, initial_pass=False, backoff_base_s=30)
    with running_daemon([env], failing, settings=settings) as d:
        d.manual_pass(env.name, "failed pass", timeout_s=10)
        assert d.daemon.states[env.name].failures == 1
        retry = d.daemon.scheduler.get_job(f"retry-{env.name}")
        assert retry is not None
        assert d.daemon.next_run(env.name) == retry.next_run_time


# ---- alerts ---------------------------------------------------------------------------------------


def _alert(fingerprint: str = "a", stack: str = "app") -> Alert:
    return Alert(AlertKind.POLICY_VIOLATION, "dev", stack, "critical", "dev/app: 1 violation", "replicas < 3",
                 fingerprint)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_same_alert_is_sent_once_within_its_window_then_again_as_a_reminder() -> None:
    clock = Clock()
    with http_receiver() as receiver:
        notifier = Notifier([alert_sink(receiver)], Metrics(), dedup_window_s=60, clock=clock)
        scope = [_alert().scope]
        for _ in range(3):
            notifier.publish([_alert()], scope)
        clock.now += 61
        notifier.publish([_alert()], scope)
        assert notifier.flush(10)
        notifier.close()
    assert [b["reminder"] for b in received_alerts(receiver)] == [False, True]


def test_an_alert_whose_condition_cleared_is_sent_again_when_it_recurs() -> None:
    clock = Clock()
    notifier = Notifier([], Metrics(), dedup_window_s=3600, clock=clock)
    scope = [_alert().scope]
    assert notifier.publish([_alert()], scope)
    assert notifier.publish([], scope) == []
    assert notifier.publish([_alert()], scope)
    notifier.close()


def test_a_sink_that_is_down_blocks_nothing_and_its_failures_are_counted() -> None:
    metrics = Metrics()
    with http_receiver() as good, http_receiver() as down:
        down.fail = True
        notifier = Notifier([alert_sink(down, name="down"), alert_sink(good, name="good")], metrics,
                            retry=RetryPolicy(attempts=3, base_delay_s=0.05))
        notifier.publish([_alert()], [])
        wait_for(lambda: good.bodies, timeout_s=5, what="delivery to the working sink")
        assert notifier.flush(10)
        notifier.close()
    assert metrics.registry.get_sample_value("reconciler_alert_delivery_failures_total", {"sink": "down"}) == 3
    assert metrics.registry.get_sample_value(
        "reconciler_alerts_total", {"kind": "policy_violation", "sink": "down", "outcome": "failed"}) == 1


def test_an_alert_through_apprise_carries_its_title_details_place_and_the_status_page() -> None:
    with http_receiver() as receiver:
        sink = AppriseSink(apprise_url(receiver.url), status_url="http://status.example/")
        notifier = Notifier([sink], Metrics())
        notifier.publish([_alert()], [])
        assert notifier.flush(10)
        notifier.close()
    [body] = receiver.bodies
    assert body["title"].endswith("dev/app: 1 violation") and body["type"] == "failure"  # critical
    assert "kind policy_violation · env dev · stack app" in body["message"]
    assert "status page: http://status.example/" in body["message"]


def test_a_plain_webhook_url_becomes_apprises_json_webhook_and_a_slack_url_stays() -> None:
    assert apprise_url("https://alerts.example/hook") == "jsons://alerts.example/hook"
    assert apprise_url("http://127.0.0.1:9/a") == "json://127.0.0.1:9/a"
    assert apprise_url("https://hooks.slack.com/services/T/B/C") == "https://hooks.slack.com/services/T/B/C"


def test_a_failed_and_a_blocked_stack_give_one_alert_each() -> None:
    result = PassResult("dev", "r1", None, False, stacks=[
        StackResult("data", StackState.FAILED, 0, reason="timeout"),
        StackResult("app", StackState.BLOCKED, 1, blocked_by=["data"])])
    assert [(a.kind, a.stack) for a in alerts_for_pass(result)] == [
        (AlertKind.SYNC_FAILED, "data"), (AlertKind.SYNC_BLOCKED, "app")]


def test_recovery_after_a_failure_is_alerted_once(env: Any) -> None:
    outcomes = [StackState.FAILED, StackState.APPLIED, StackState.APPLIED]

    def factory(e: Any) -> CannedEngine:
        return CannedEngine(e, outcome=lambda: outcomes[0])

    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        for _ in range(3):
            d.manual_pass(env.name, "pass", timeout_s=10)
            outcomes.pop(0) if len(outcomes) > 1 else None
        kinds = [a.kind for a in d.daemon.notifier.history]
    assert kinds.count(AlertKind.RECOVERED) == 1


# ---- logging and metrics ---------------------------------------------------------------------------


def test_log_lines_are_json_with_bound_context_and_no_secrets() -> None:
    from reconciler.logs import bound, configure_logging, get_logger

    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    with bound(env="dev", run_id="r1", commit="abc"):
        get_logger().info("cloning", url="https://bot:s3cr3t@git.example/o/r.git", token="s3cr3t",
                          header="Bearer s3cr3t")
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert (line["env"], line["run_id"], line["commit"]) == ("dev", "r1", "abc")
    assert "s3cr3t" not in stream.getvalue()


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_tracebacks_text_is_redacted_too(fmt: str) -> None:
    from reconciler.logs import configure_logging, get_logger

    stream = io.StringIO()
    configure_logging("info", fmt, stream=stream)
    try:
        raise RuntimeError("fetch of https://bot:s3cr3t@git.example/o/r.git failed")
    except RuntimeError:
        get_logger().exception("pass crashed")
        logging.getLogger("uvicorn.error").exception("while serving")
    assert "RuntimeError: fetch of https://***@git.example/o/r.git failed" in stream.getvalue()
    assert "s3cr3t" not in stream.getvalue()


def test_metrics_parse_and_show_a_pass(env: Any) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        d.manual_pass(env.name, "pass", timeout_s=10)
        families = {f.name: f for f in text_string_to_metric_families(requests.get(f"{d.base}/metrics").text)}
    for name in ("reconciler_pass_duration_seconds", "reconciler_objects_applied", "reconciler_drift_objects",
                 "reconciler_policy_violations", "reconciler_last_success_timestamp_seconds",
                 "reconciler_api_requests_per_pass"):
        assert name in families, name
    [success] = [s for s in families["reconciler_last_success_timestamp_seconds"].samples
                 if s.labels["env"] == env.name]
    assert success.value > 0


# ---- status page --------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(tmp_path: Path, url: str, *extra: str) -> str:
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
               "--virtual-time-budget=4000", "--window-size=1280,900", *extra, url]
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install -y chromium)")
def test_the_status_page_shows_every_stack_in_headless_chromium(env: Any, tmp_path: Path) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False)) as d:
        d.manual_pass(env.name, "pass", timeout_s=10)
        dom = chromium(tmp_path, d.base + "/", "--dump-dom")
        screenshot = tmp_path / "status-page.png"
        chromium(tmp_path, d.base + "/", f"--screenshot={screenshot}")
    for stack in ("config", "app"):
        assert f'data-stack="{stack}" data-state="applied"' in dom
    assert screenshot.stat().st_size > 10_000
    print(f"status page screenshot: {screenshot}")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install -y chromium)")
def test_the_status_page_opened_with_the_read_token_shows_the_stacks_and_without_it_says_why(
        env: Any, tmp_path: Path) -> None:
    with running_daemon([env], canned, settings=DaemonSettings(poll=False, initial_pass=False),
                        read_token="reader-secret") as d:
        d.manual_pass(env.name, "pass", timeout_s=10)
        with_token = chromium(tmp_path, d.base + "/#token=reader-secret", "--dump-dom")
        without = chromium(tmp_path / "other", d.base + "/", "--dump-dom")
    assert 'data-stack="app" data-state="applied"' in with_token
    assert "needs its read token" in without and 'data-stack="app"' not in without


def test_a_retry_that_comes_due_while_the_process_is_too_busy_to_run_it_still_runs() -> None:
    """Found by bench_fleet: under load a retry job ran 1.9 s late and the scheduler dropped it (its default
    grace is 1 s), so a failed environment waited for its next poll (an hour) instead of its retry."""
    timing = PassTiming(DaemonSettings(backoff_base_s=0.2), Metrics(), {"env": EnvState()})
    retried = threading.Event()
    timing.scheduler.start(paused=True)  # the busy process: nothing the scheduler holds runs
    try:
        timing.after_pass("env", failed=True, stopped=False, retry=lambda reason: retried.set())
        assert not retried.wait(1.5)  # due after 0.2 s; now more than a second late
        timing.scheduler.resume()

        assert retried.wait(10)
        wait_for(lambda: timing.scheduler.get_job("retry-env") is None, timeout_s=10, what="the one-shot job to be done")
    finally:
        timing.scheduler.shutdown(wait=False)
