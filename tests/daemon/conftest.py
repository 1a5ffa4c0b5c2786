"""Fixtures of the daemon tests against the cluster."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from daemon_support import GitRepo, watched_repo


@pytest.fixture()
def repo(tmp_path: Path, namespace: str) -> GitRepo:
    return watched_repo(tmp_path, namespace)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (Debian's chromium: no browser download), one per test module:
    a launch took about 1.5 s, and the status page views alone are ten tests. Not one per session: the sync
    API's event loop would then live beside the asyncio code of other modules."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture()
def browser(chromium: Any) -> Iterator[Any]:
    """The module's Chromium. Each page a test opens comes in a browser context of its own (no storage
    shared with another test); all are closed after the test, so no page keeps following a stopped daemon."""
    yield chromium
    for context in list(chromium.contexts):
        context.close()
