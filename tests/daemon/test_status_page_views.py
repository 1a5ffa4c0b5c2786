"""The status page answers the questions people open a GitOps UI for, in a real browser (headless
Chromium driven by Playwright) against a daemon with real engines on the devcluster: which object is
unhealthy and why, what exactly drifted, why a stack was blocked, what merging a branch does, what
the next pass applies, and the actions (sync a stack and watch it finish live; suspend and resume).
Screenshots are kept in artifacts/screenshots/ of the checkout (ignored by Git), named in the output."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from kubernetes import client

from daemon_support import API_TOKEN, GatedEngine, GitRepo, git, running_daemon, write_env
from manifests import deployment, write_policies_enforcing_only_min_replicas
from reconciler.config import load_environment
from reconciler.daemon.service import DaemonSettings, default_engine_factory

pytestmark = pytest.mark.cluster
QUIET = DaemonSettings(poll=False, initial_pass=False, live=False)


class _Writer:
    """The daemon tests' GitRepo as manifests.py's helpers want it (data written as YAML)."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo, self.work_path = repo, repo.work

    def write(self, relative: str, data: Any) -> None:
        self.repo.write(relative, data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))


def write_stack(repo: GitRepo, stack: str, objects: list[dict]) -> None:
    repo.write(f"stacks/{stack}/objects.yaml", yaml.safe_dump_all(objects, sort_keys=False))
    repo.write(f"stacks/{stack}/kustomization.yaml", yaml.safe_dump(
        {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["objects.yaml"]}))


def configmaps(namespace: str, count: int, value: str = "v1") -> list[dict]:
    return [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"settings-{i:03d}", "namespace": namespace},
             "data": {"value": value}} for i in range(count)]


def unschedulable(name: str, namespace: str) -> dict:
    """A Deployment no node can run (no node has the label): never available."""
    body = deployment(name, namespace)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"ui.test/no-such-node": "true"}
    return body


@contextmanager
def page_of(browser: Any, url: str, answers: dict[str, str] | None = None) -> Iterator[Any]:
    """A page at `url`; dialogs are answered by the first key their message starts with (the API token
    by default); JavaScript errors fail the test."""
    answers = {"API token": API_TOKEN, **(answers or {})}
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
            and errors.append(m.text))  # an HTTP error is the test's to judge; a script error never passes
    page.on("dialog", lambda d: d.accept(next((v for k, v in answers.items() if d.message.startswith(k)), "")))
    page.asked = []  # type: ignore[attr-defined]
    page.on("dialog", lambda d: page.asked.append(d.message))
    page.goto(url)
    try:
        yield page
    except Exception:
        print(f"JavaScript errors: {errors}\npage text:\n{page.inner_text('body')[:3000]}")
        raise
    finally:
        page.close()
    assert not errors, errors


ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"  # kept after the run; ignored by Git


def screenshot(page: Any, tmp_path: Path, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


@contextmanager
def daemon_on(repo: GitRepo, tmp_path: Path, kubeconfig: Path, stacks: list[tuple[str, list[str]]], *,
              settings: DaemonSettings = QUIET, wrap: Any = None, **env_options: Any) -> Iterator[Any]:
    env = load_environment(write_env(tmp_path / "env.yaml", repo, stacks, **env_options))
    factory = default_engine_factory(tmp_path / "cache", kubeconfig)
    with running_daemon([env], (lambda e: wrap(factory(e))) if wrap else factory, settings=settings) as running:
        running.env = env
        yield running


def synced(running: Any) -> Any:
    """A manual pass of the fixture's environment, waited for; the run."""
    return running.manual_pass(running.env.name)


def test_the_unhealthy_object_is_found_among_many_by_its_filter_with_the_reason(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 60) + [unschedulable("web", namespace)])
    repo.commit_and_push("60 settings and a web that cannot run")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])], sync={"waitForHealth": False}) as running:
        synced(running)
        with page_of(browser, running.base + "/") as page:
            page.click(f'[data-env="{running.env.name}"] a[aria-label^="stack app"]')
            page.wait_for_selector('[data-objects="app"][data-complete="true"]')
            everything = page.get_attribute('[data-objects="app"]', "data-shown")
            page.click('button[data-filter="unhealthy"]')
            page.wait_for_function("document.querySelector('[data-objects=app]').dataset.shown === '1'")
            row = page.locator(".vrow[data-object-id]")
            found, health, text = row.get_attribute("data-object-id"), row.get_attribute("data-health"), row.inner_text()
            page.keyboard.press("/")
            page.keyboard.type("settings-05")
            page.click('button[data-filter="all"]')
            page.wait_for_function("document.querySelector('[data-objects=app]').dataset.shown === '10'")
            url = page.url
            screenshot(page, tmp_path, "unhealthy-object")

    assert everything == "61"
    assert found == f"apps/Deployment/{namespace}/web" and health == "progressing"
    assert "updatedReplicas" in text or "rollout" in text or "available" in text.lower(), text
    assert "q=settings-05" in url and f"/env/{running.env.name}/stack/app" in url


def test_a_drifted_field_shows_gits_value_beside_the_live_one_with_secrets_masked(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": namespace},
              "stringData": {"password": "git-password-1"}}
    write_stack(repo, "app", configmaps(namespace, 3) + [secret])
    repo.commit_and_push("settings and a secret")
    settings = DaemonSettings(poll=False, initial_pass=False, live=False, drift_check=True)
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])], settings=settings, correct_drift=False) as running:
        synced(running)
        core = client.CoreV1Api(api_client)
        core.patch_namespaced_config_map("settings-001", namespace, {"data": {"value": "edited-by-hand"}})
        core.patch_namespaced_secret("db", namespace, {"stringData": {"password": "live-password-2"}})
        synced(running)  # its drift check records what differs
        route = f"/#/env/{running.env.name}/stack/app?show=drifted"
        with page_of(browser, running.base + route) as page:
            page.wait_for_function("document.querySelector('[data-objects=app]')?.dataset.shown === '2'")
            page.click(f'.vrow[data-object-id="core/ConfigMap/{namespace}/settings-001"]')
            diff = page.wait_for_selector('[data-detail] .d2h-file-side-diff')
            sides = [side.inner_text() for side in page.query_selector_all('[data-detail] .d2h-file-side-diff')]
            screenshot(page, tmp_path, "drift-diff")
            page.click(f'.vrow[data-object-id="core/Secret/{namespace}/db"]')
            page.wait_for_selector(f'[data-detail="core/Secret/{namespace}/db"] .d2h-file-side-diff')
            secret_text = page.inner_text("[data-detail]")

    assert diff is not None
    assert "v1" in sides[0] and "edited-by-hand" in sides[1], sides
    assert "data.value" in sides[0]
    assert "git-password-1" not in secret_text and "live-password-2" not in secret_text
    assert "***" in secret_text or "masked" in secret_text.lower(), secret_text


def test_a_blocked_stack_shows_the_rule_the_object_the_message_and_the_fix(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    write_policies_enforcing_only_min_replicas(_Writer(repo), 2)  # type: ignore[arg-type]
    write_stack(repo, "app", [deployment("web", namespace, replicas=1)] + configmaps(namespace, 2))
    repo.commit_and_push("web with one replica")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        with page_of(browser, running.base + f"/#/env/{running.env.name}") as page:
            page.click('tr[data-stack-row="app"] a')
            page.wait_for_selector('[data-why="app"] tr[data-violation-rule="min-replicas"]')
            why = page.inner_text('[data-why="app"]')
            state = page.get_attribute('[data-why="app"] .badge', "class")
            page.click('button[data-filter="violations"]')
            page.wait_for_function("document.querySelector('[data-objects=app]').dataset.shown === '1'")
            page.click(f'.vrow[data-object-id="apps/Deployment/{namespace}/web"]')
            detail = page.wait_for_selector('[data-object-violation="min-replicas"]').inner_text()
            health = page.get_attribute(f'.vrow[data-object-id="apps/Deployment/{namespace}/web"]', "data-health")
            screenshot(page, tmp_path, "blocked-stack")

    assert "state-blocked" in (state or "")
    assert f"apps/Deployment/{namespace}/web" in why and "min-replicas" in why
    assert "replicas" in why.lower() and "fix" in why.lower()
    assert "blocks the stack" in detail and "fix:" in detail
    assert health == "not applied"


def test_a_branch_preview_shows_what_merging_it_adds_changes_and_prunes_per_stack(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 3))
    repo.commit_and_push("three settings")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        git(repo.work, "checkout", "-q", "-b", "feature")
        write_stack(repo, "app", configmaps(namespace, 2, "v2") + configmaps(namespace, 4, "v2")[3:])
        git(repo.work, "add", "-A")
        git(repo.work, "commit", "-q", "-m", "feature: v2, one setting swapped")
        git(repo.work, "push", "-q", "origin", "feature")
        with page_of(browser, running.base + f"/#/env/{running.env.name}") as page:
            page.fill(f'[data-preview-input="{running.env.name}"]', "feature")
            page.press(f'[data-preview-input="{running.env.name}"]', "Enter")
            page.wait_for_selector('[data-report="preview"]', timeout=60_000)
            row = page.locator('tr[data-preview-stack="app"]').inner_text()
            page.click(f'details[data-change="core/ConfigMap/{namespace}/settings-000"] summary')
            page.wait_for_selector("[data-report] .d2h-file-side-diff")
            sides = [s.inner_text() for s in page.query_selector_all('[data-report] .d2h-file-side-diff')]
            url = page.url
            screenshot(page, tmp_path, "branch-preview")

    cells = row.split("\t")
    assert cells[:5] == ["app", "changed", "1", "2", "1"], cells
    assert "v1" in sides[0] and "v2" in sides[1], sides
    assert "#/run/" in url


def test_pending_changes_show_what_the_next_pass_applies_field_by_field(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 3))
    repo.commit_and_push("v1")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        write_stack(repo, "app", configmaps(namespace, 1, "v2") + configmaps(namespace, 3)[1:])
        repo.commit_and_push("settings-000 to v2")
        with page_of(browser, running.base + f"/#/env/{running.env.name}/stack/app") as page:
            page.click(f'button[data-plan="{running.env.name}/app"]')
            page.wait_for_selector('[data-report="plan"] [data-plan-stack="app"]', timeout=60_000)
            changes = page.locator("[data-report=plan] details[data-change]").count()
            page.click(f'details[data-change="core/ConfigMap/{namespace}/settings-000"] summary')
            page.wait_for_selector("[data-report] .d2h-file-side-diff")
            sides = [s.inner_text() for s in page.query_selector_all("[data-report] .d2h-file-side-diff")]
            screenshot(page, tmp_path, "pending-changes")
        live = client.CoreV1Api(api_client).read_namespaced_config_map("settings-000", namespace).data["value"]

    assert changes == 1
    assert "v1" in sides[0] and "v2" in sides[1], sides
    assert live == "v1"  # a plan applies nothing


def test_a_stack_synced_from_the_page_shows_its_run_live_until_it_finishes(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 2))
    repo.commit_and_push("v1")
    gated: list[GatedEngine] = []
    wrap = lambda engine: gated.append(GatedEngine(engine)) or gated[-1]  # noqa: E731
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])], wrap=wrap) as running:
        gated[0].gate.set()
        synced(running)
        gated[0].gate.clear()
        write_stack(repo, "app", configmaps(namespace, 2, "v2"))
        repo.commit_and_push("v2")
        with page_of(browser, running.base + f"/#/env/{running.env.name}/stack/app") as page:
            page.click(f'button[data-sync="{running.env.name}/app"]')
            page.wait_for_selector('#action-result[data-state="running"]')
            while_running = page.inner_text("#action-result")
            gated[0].gate.set()
            page.wait_for_selector('#action-result[data-state="done"]', timeout=60_000)
            finished = page.inner_text("#action-result")
            value = client.CoreV1Api(api_client).read_namespaced_config_map("settings-000", namespace).data["value"]
            page.click("#action-result a[data-run-link]")
            page.wait_for_selector('[data-report="sync"] [data-result-stack="app"]')
            asked = list(page.asked)
            screenshot(page, tmp_path, "sync-run")

    assert "running" in while_running and f"sync of app in {running.env.name}" in while_running
    assert "succeeded" in finished
    assert value == "v2"
    assert asked == [f"API token for the sync of app in {running.env.name}:"]


def test_a_refused_token_is_said_plainly_and_asked_for_again(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        with page_of(browser, running.base + f"/#/env/{running.env.name}", {"API token": "wrong"}) as page:
            page.click(f'button[data-sync="{running.env.name}"]')
            page.wait_for_selector('#action-result[data-state="refused"]')
            first = page.inner_text("#action-result")
            page.click(f'button[data-sync="{running.env.name}"]')
            page.wait_for_function("document.querySelector('#action-result').dataset.state === 'refused'")
            asked = list(page.asked)

    assert "HTTP 401" in first and "token was refused" in first
    assert len(asked) == 2  # a refused token is forgotten: the next action asks again
    assert not running.daemon.runbook.recent(5)


def test_a_click_on_a_button_whose_card_is_redrawn_while_pressed_still_starts_its_action(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    """The page redraws an environment's card on every change the daemon announces; a redraw between the press
    and the release of a button would replace it, and the click, pressed on one node and released on another,
    would start nothing."""
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        name = running.env.name
        with page_of(browser, running.base + f"/#/env/{name}") as page:
            page.locator(f'button[data-sync="{name}"]').hover()
            page.mouse.down()
            reads = page.evaluate("performance.getEntriesByName('status-read').length")  # each one now while pressed
            running.daemon.trigger(name, "manual")  # the daemon announces the pass: the page reads its status again
            page.wait_for_function(f"performance.getEntriesByName('status-read').length > {reads}")
            page.mouse.up()
            page.wait_for_selector('#action-result[data-state="queued"], #action-result[data-state="running"], '
                                   '#action-result[data-state="done"]', timeout=60_000)
            asked = list(page.asked)

    assert asked == [f"API token for the sync of {name}:"]


def test_an_environment_suspended_and_resumed_from_the_page_says_so_and_syncs_again(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        name = running.env.name
        with page_of(browser, running.base + f"/#/env/{name}", {"Why suspend": "release freeze"}) as page:
            page.click(f'button[data-suspend="{name}"]')
            page.wait_for_selector(f'[data-env="{name}"] [data-stack="app"][data-state="suspended"]', timeout=60_000)
            suspended = page.inner_text(".problems")
            screenshot(page, tmp_path, "suspended")
            page.click(f'button[data-resume="{name}"]')
            page.wait_for_selector(f'[data-env="{name}"] [data-stack="app"]:not([data-state="suspended"])', timeout=60_000)
            resumed_state = page.get_attribute(f'[data-env="{name}"] [data-stack="app"]', "data-state")
            asked = list(page.asked)

    assert "environment suspended by status page" in suspended and "release freeze" in suspended
    assert resumed_state in ("applied", "unchanged")
    assert asked == [f"Why suspend {name}? (shown wherever its status is)", f"API token for the suspend of {name}:"]


def test_a_stack_views_url_restores_it_and_the_keyboard_moves_through_its_objects(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 20))
    repo.commit_and_push("twenty settings")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        chosen = f"core/ConfigMap/{namespace}/settings-012"
        route = f"/#/env/{running.env.name}/stack/app?q=settings-01&object={chosen}"
        with page_of(browser, running.base + route) as page:
            page.wait_for_selector(f'[data-detail="{chosen}"]')
            restored = (page.input_value("#object-search"), page.get_attribute('[data-objects="app"]', "data-shown"))
            page.focus(".vlist")
            page.keyboard.press("ArrowDown")
            page.keyboard.press("Enter")
            moved_to = page.wait_for_selector(f'[data-detail="core/ConfigMap/{namespace}/settings-013"]')
            url = page.url
            page.focus(".vlist")
            page.keyboard.press("/")
            focused = page.evaluate("document.activeElement.id")

    assert restored == ("settings-01", "10")
    assert moved_to is not None and "object=core%2FConfigMap" in url and "settings-013" in url
    assert focused == "object-search"


def test_the_dark_theme_is_chosen_with_one_button_and_remembered(
        repo: GitRepo, tmp_path: Path, kubeconfig: Path, browser: Any) -> None:
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        with page_of(browser, running.base + "/") as page:
            first = page.get_attribute("html", "data-theme")
            page.click("#theme")
            toggled = page.get_attribute("html", "data-theme")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            page.reload()
            page.wait_for_selector("body[data-loaded]")
            remembered = page.get_attribute("html", "data-theme")

    assert first == "light" and toggled == "dark" and remembered == "dark"
    assert background == "rgb(18, 18, 18)"


def test_a_run_whose_stack_the_api_server_rejected_counts_its_changes_as_planned_not_changed(
        repo: GitRepo, tmp_path: Path, namespace: str, kubeconfig: Path, api_client: client.ApiClient,
        browser: Any) -> None:
    write_stack(repo, "app", configmaps(namespace, 2))
    repo.commit_and_push("v1")
    with daemon_on(repo, tmp_path, kubeconfig, [("app", [])]) as running:
        synced(running)
        bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Not_A_Name", "namespace": namespace}}
        write_stack(repo, "app", configmaps(namespace, 2, "v2") + [bad])
        repo.commit_and_push("v2 and an object the API server rejects")
        run = synced(running)
        with page_of(browser, running.base + f"/#/run/{run.id}") as page:
            line = page.inner_text('[data-report="sync"] [data-result-stack="app"]')
        live = client.CoreV1Api(api_client).read_namespaced_config_map("settings-000", namespace).data["value"]

    assert live == "v1"  # nothing applied
    assert "3 planned" in line and "changed" not in line, line
    assert "nothing applied" in line, line
