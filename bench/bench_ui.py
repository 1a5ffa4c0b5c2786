"""Benchmark: the status page at 10,000 objects, in headless Chromium on this machine.

    python bench/bench_ui.py [--objects 10000] [--runs 5] [--kubeconfig PATH]

The environment is compare.py's synthetic one (5 chained stacks, one namespace each; 10% Deployments
of one replica, 10% Services, the rest ConfigMaps), so 10,000 objects make stacks of 2,000. The
daemon runs in this process with its live cache (as `reconciler run` does) against a devcluster it
starts sized for the pods (unless --kubeconfig), syncs everything once, runs its drift check, and
then headless Chromium (Playwright, Debian's chromium) measures, `--runs` times each in a fresh page:

- environment page: navigation start until the stack graph is drawn (`status-rendered` mark), and
  the browser's first contentful paint;
- open a stack of 2,000 objects: the click on its box until the first rows are drawn
  (`stack-rendered`), and until every object is loaded into the list (`data-complete`);
- a search keystroke: keydown in the search box until the filtered list is drawn (the next frame),
  over four keystrokes a run;
- what the API sends: /api/status and the first page of /api/objects, in bytes.

The first page opens the stack on a daemon that has not built its object list yet; the daemon keeps
the list until a pass, a drift check or a watch event on the stack's objects, so later pages open
it from memory (as people opening a link someone sent them do).

Prints a Markdown table with the goals of issue 26 beside Argo CD's published limits (its UI freezes
at about 1,500 tracked resources, argo-cd #15509).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import git  # noqa: E402
import yaml  # noqa: E402

from compare import STACKS, synthetic  # noqa: E402
from reconciler.config import load_environment  # noqa: E402
from reconciler.daemon.server import ServerSecrets, ServerThread, create_app  # noqa: E402
from reconciler.daemon.service import Daemon, DaemonSettings, default_engine_factory  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
KEYS = "o123"


def environment(root: Path, objects: int) -> Path:
    repo = git.Repo.init(root / "repo", initial_branch="main")
    synthetic(root / "repo", objects, "ui")
    repo.git.add(A=True)
    repo.index.commit("synthetic")
    env = {"name": "bench-ui", "source": {"url": str(root / "repo")}, "policy": {"mode": "off"},
           "sync": {"interval": "1h", "healthTimeout": "15m"},
           "stacks": [{"name": f"s{i}", "path": f"stacks/s{i}", **({"dependsOn": [f"s{i - 1}"]} if i else {})}
                      for i in range(STACKS)]}
    path = root / "env.yaml"
    path.write_text(yaml.safe_dump(env))
    return path


def synced_daemon(env_file: Path, kubeconfig: Path, cache: Path) -> tuple[Daemon, ServerThread, float]:
    env = load_environment(env_file)
    daemon = Daemon([env], default_engine_factory(cache, kubeconfig), settings=DaemonSettings(poll=False))
    server = ServerThread(create_app(daemon, ServerSecrets("token")), "127.0.0.1", 0)
    server.start()
    started = time.monotonic()
    daemon.start()
    deadline = time.monotonic() + 1800
    while not (daemon.states[env.name].last_drift and daemon.workers[env.name].wait_idle(0.5)):
        if time.monotonic() > deadline:
            raise SystemExit("the environment did not sync within 30 min")
    result = daemon.states[env.name].last_result
    if result is None or not result.ok:
        raise SystemExit(f"the first pass did not succeed: {result and (result.error or result.stacks)}")
    return daemon, server, time.monotonic() - started


def settle(limit_s: float = 300.0) -> float:
    """Wait until this process (the daemon) uses under a tenth of a core over 2 s: after a cold sync its
    live cache hears of every object it applied. The page is measured on a daemon at rest, as people
    open it; how long the settling took is printed."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        cpu, wall = time.process_time(), time.monotonic()
        time.sleep(2.0)
        if (time.process_time() - cpu) / (time.monotonic() - wall) < 0.1:
            break
    return time.monotonic() - started


def api_ms(url: str, runs: int = 5) -> float:
    """Median time of one GET, from this process (the server side of opening a stack)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        urllib.request.urlopen(url).read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure_once(browser, base: str, stack: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/#/env/bench-ui")
        page.wait_for_function("performance.getEntriesByName('status-rendered').length > 0", timeout=60_000)
        env_ms = page.evaluate("performance.getEntriesByName('status-rendered')[0].startTime")
        fcp_ms = page.evaluate("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || 0")
        page.evaluate("window.clicked = performance.now()")
        page.click(f'a[aria-label^="stack {stack}:"]')
        page.wait_for_function("performance.getEntriesByName('stack-rendered').length > 0", timeout=60_000)
        open_ms = page.evaluate("performance.getEntriesByName('stack-rendered')[0].startTime - window.clicked")
        page.wait_for_selector(f'[data-objects="{stack}"][data-complete="true"]', timeout=60_000)
        complete_ms = page.evaluate("performance.now() - window.clicked")
        page.evaluate("""() => {
            const input = document.getElementById('object-search');
            window.keyTimes = [];
            input.addEventListener('keydown', () => { window.keyAt = performance.now(); }, { capture: true });
            input.addEventListener('input', () => requestAnimationFrame(() => setTimeout(
                () => window.keyTimes.push(performance.now() - window.keyAt), 0)));
        }""")
        page.click("#object-search")
        for key in KEYS:
            page.keyboard.press(key)
            page.wait_for_timeout(150)
        page.wait_for_function(f"window.keyTimes.length === {len(KEYS)}")
        keys = page.evaluate("window.keyTimes")
        shown = page.get_attribute(f'[data-objects="{stack}"]', "data-shown")
        return {"env": env_ms, "fcp": fcp_ms, "open": open_ms, "complete": complete_ms, "key": max(keys),
                "key_median": statistics.median(keys), "shown": float(shown or 0)}
    finally:
        page.close()


def api_bytes(base: str, stack: str) -> tuple[int, int]:
    status = urllib.request.urlopen(f"{base}/api/status").read()
    first = urllib.request.urlopen(f"{base}/api/objects?env=bench-ui&stack={stack}&limit=200").read()
    return len(status), len(first)


def run(kubeconfig: Path, objects: int, runs: int, where: str) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as tmp:
        root = Path(tmp)
        daemon, server, sync_s = synced_daemon(environment(root, objects), kubeconfig, root / "cache")
        base, stack = f"http://127.0.0.1:{server.port}", f"s{STACKS - 1}"
        try:
            settled_s = settle()
            first_page = f"{base}/api/objects?env=bench-ui&stack={stack}&limit=200"
            cold_api_ms = api_ms(first_page, 1)
            warm_api_ms = api_ms(first_page)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                results = [measure_once(browser, base, stack) for _ in range(runs)]
                browser.close()
            status_bytes, page_bytes = api_bytes(base, stack)
        finally:
            daemon.stop(timeout_s=30)
            server.stop()
            for index in range(STACKS):  # on a cluster from --kubeconfig, leave nothing behind
                subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "delete", "namespace", f"ui-s{index}",
                                "--wait=false", "--ignore-not-found"], capture_output=True)
    print(table(objects, runs, results, sync_s, status_bytes, page_bytes, where))
    print(f"\nThe daemon settled {settled_s:.0f} s after the sync (under a tenth of a core). The first page of "
          f"/api/objects from Python: {cold_api_ms:.0f} ms with the list built on request, {warm_api_ms:.0f} ms kept "
          f"(median of 5).")


def table(objects: int, runs: int, results: list[dict[str, float]], sync_s: float, status_bytes: int,
          page_bytes: int, where: str) -> str:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    per_stack = objects // STACKS
    return "\n".join([
        f"## Status page, {objects:,} objects ({STACKS} stacks of {per_stack:,}), {date.today().isoformat()}, "
        f"headless Chromium, {where}", "",
        f"Cold sync of the environment by the daemon first: {sync_s:.0f} s. Medians of {runs} fresh pages "
        f"(max in brackets).", "",
        "| measure | ours | goal (issue 26) | Argo CD, published |",
        "|---|---|---|---|",
        f"| environment page: graph drawn (first contentful paint) | {median('env'):.0f} ms "
        f"({max(r['env'] for r in results):.0f}) (FCP {median('fcp'):.0f} ms) | < 1,500 ms | UI freezes at about "
        f"1,500 resources (argo-cd #15509) |",
        f"| open a stack of {per_stack:,} objects: first rows drawn | {median('open'):.0f} ms "
        f"({max(r['open'] for r in results):.0f}); the first page, list built by the daemon: "
        f"{results[0]['open']:.0f} ms | < 500 ms | resource tree cramped at scale (argo-cd #10292) |",
        f"| the same stack: all {per_stack:,} objects loaded in the list | {median('complete'):.0f} ms | – | – |",
        f"| search keystroke answered (slowest of {len(KEYS)} a run) | {median('key'):.0f} ms "
        f"({max(r['key'] for r in results):.0f}) | < 100 ms | – |",
        f"| /api/status; first page of /api/objects (200 objects) | {status_bytes / 1024:.0f} KiB; "
        f"{page_bytes / 1024:.0f} KiB | – | – |",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kubeconfig", type=Path)
    args = parser.parse_args()
    if args.kubeconfig:
        run(args.kubeconfig, args.objects, args.runs, "cluster from --kubeconfig")
        return 0
    from devcluster.cluster import temporary

    nodes = max(3, math.ceil((args.objects // 10) / 100) + 1)  # a tenth are Deployments of one replica
    with temporary(nodes, prefix="bench-ui-cluster-") as kubeconfig:
        run(kubeconfig, args.objects, args.runs, f"devcluster of {nodes} kwok nodes, 2 cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
