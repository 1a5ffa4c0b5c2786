"""The status page in a real browser (headless Chromium driven by Playwright) against a daemon with real
engines: each stack's history with times people read, and the rollback button that asks for the token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from daemon_support import API_TOKEN, GitRepo, configmap_stack, git, running_daemon, write_env
from helpers import wait_for
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory

pytestmark = pytest.mark.cluster


def _value(api_client: client.ApiClient, namespace: str) -> str:
    return client.CoreV1Api(api_client).read_namespaced_config_map("app-settings", namespace).data["value"]


def _two_commits_synced(running: Any, repo: GitRepo, namespace: str, env_name: str) -> tuple[str, str]:
    first = git(repo.work, "rev-parse", "HEAD")  # v1, pushed by the repo fixture
    running.manual_pass(env_name, "the first pass", must_succeed=True)
    configmap_stack(repo, "app", namespace, {"value": "v2"})
    second = repo.commit_and_push("v2: a new value")
    running.manual_pass(env_name, "the second pass", must_succeed=True)
    return first, second


def _history_rows(page: Any, env_name: str, count: int) -> Any:
    """The history section's rows once it shows `count`; if it never does, what the section and the page's
    action line said instead (a failed history request leaves "loading…" there and says why in the line)."""
    section = f'details[data-history-env="{env_name}"]'
    rows = page.locator(f"{section} tr[data-commit]")
    try:
        rows.nth(count - 1).wait_for()
    except Exception as exc:  # playwright's TimeoutError
        said = page.inner_text("#action-result")
        raise AssertionError(f"the history shows {rows.count()} of {count} rows; section: "
                             f"{page.inner_text(section)!r}; action line: {said!r}") from exc
    return rows


def test_the_history_shows_relative_times_and_the_rollback_and_unpin_buttons_ask_for_the_token_and_act(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    factory = default_engine_factory(tmp_path / "cache", kubeconfig)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as running:
        first, second = _two_commits_synced(running, repo, namespace, env.name)
        page = browser.new_page()
        asked: list[str] = []
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept(API_TOKEN)))
        page.goto(running.base + "/")
        page.wait_for_selector(f'[data-env="{env.name}"] [data-stack="app"]')
        page.click(f'details[data-history-env="{env.name}"] summary')
        rows = _history_rows(page, env.name, count=2)
        commits = [rows.nth(i).get_attribute("data-commit") for i in range(rows.count())]
        when = rows.first.locator("time")
        relative, exact = when.inner_text(), when.get_attribute("title")
        page_text = page.inner_text("body")

        page.click(f'details[data-history-env="{env.name}"] button[data-rollback-stack="app"]')
        page.wait_for_selector('#action-result[data-state="done"]', timeout=60_000)
        wait_for(lambda: _value(api_client, namespace) == "v1", timeout_s=60, what="the rollback to v1")
        page.wait_for_selector('[data-pinned="true"]', timeout=20_000)
        banner = page.inner_text('[data-pinned="true"]')
        page.screenshot(path=str(tmp_path / "status-page-history.png"), full_page=True)
        print(f"status page screenshot: {tmp_path / 'status-page-history.png'}")

        page.evaluate("document.getElementById('action-result').dataset.state = ''")
        page.click(f'[data-unpin="{env.name}"]')
        page.wait_for_selector('#action-result[data-state="done"]', timeout=60_000)
        wait_for(lambda: _value(api_client, namespace) == "v2", timeout_s=60, what="the head applied again after unpin")
        page.wait_for_selector('[data-pinned="true"]', state="detached", timeout=20_000)

    assert commits == [second, first]
    assert re.fullmatch(r"\d+ (s|min) ago", relative), relative
    assert exact and re.search(r"\d{4}", exact) and "T" not in exact, exact
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d{3,}", page_text), "raw ISO times with fractions on the page"
    assert asked == [f"API token for the rollback of app in {env.name} to its last healthy commit:"]  # once per tab
    assert f"app at {first[:10]}" in banner


def test_the_history_opened_while_the_page_redraws_stays_open_and_shows_its_commits(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    """The section's toggle event comes a task after the click; a redraw in between (a status change
    announced then) put a new, closed section on the page and the commits never showed."""
    env = load_environment(write_env(tmp_path / "env.yaml", repo, [("app", [])]))
    factory = default_engine_factory(tmp_path / "cache", kubeconfig)
    with running_daemon([env], factory, settings=DaemonSettings(poll=False, initial_pass=False)) as running:
        running.manual_pass(env.name, "the pass")
        page = browser.new_page()
        page.goto(running.base + "/")
        section = f'details[data-history-env="{env.name}"]'
        page.wait_for_selector(f"{section} summary")
        opened_after_toggle = page.evaluate("""selector => new Promise(resolve => {
            const clicked = document.querySelector(selector);
            // after the page's own toggle listener: is the section on the page now open?
            clicked.addEventListener("toggle", () => resolve(document.querySelector(selector).open));
            clicked.querySelector("summary").click();
            window.dispatchEvent(new HashChangeEvent("hashchange"));  // redraws at once, before the toggle event
        })""", section)
        assert opened_after_toggle, "the redrawn section stayed closed"
        page.locator(f"{section} tr[data-commit]").first.wait_for(timeout=20_000)
