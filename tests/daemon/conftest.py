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


@pytest.fixture()
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (Debian's chromium: no browser download)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()
