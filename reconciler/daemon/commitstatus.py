"""Commit statuses: after each pass, the commit it applied (or failed, or held) gets a status on its Git host.

After `git push` the author looks at the commit on GitHub or GitLab; Flux's notification-controller
and Argo CD's notifications set a status there. The context names the environment and the cluster,
so several environments (and clusters) reporting on one commit never overwrite each other (Flux's
statuses did, argo-cd and flux2 issues say). Each host's documented API:

- GitHub: `POST {api}/repos/{owner}/{repo}/statuses/{sha}`, `Authorization: Bearer <token>`, body
  `state` (error, failure, pending, success), `target_url`, `description` (140 characters), `context`.
- GitLab: `POST {api}/api/v4/projects/{url-encoded path}/statuses/{sha}`, `PRIVATE-TOKEN: <token>`,
  body `state` (pending, running, success, failed, canceled), `name`, `target_url`, `description`.
- Gitea (and Forgejo): `POST {api}/api/v1/repos/{owner}/{repo}/statuses/{sha}`, `Authorization:
  token <token>`, body as GitHub's (states pending, success, error, failure, warning).

Requests go out on one background thread, retried by the shared policy (`daemon.retrying`), so a
slow host never holds up a pass.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from reconciler.config import CommitStatusConfig, EnvironmentConfig
from reconciler.retrying import RetryPolicy, retry_call
from reconciler.logs import get_logger, redact_text
from reconciler.results import PassResult, StackState

log = get_logger("reconciler.daemon.commitstatus")

_GITLAB_STATE = {"success": "success", "pending": "pending", "failure": "failed", "error": "failed"}


@dataclass(frozen=True)
class CommitState:
    state: str  # GitHub's vocabulary: success, pending, failure, error
    description: str


def commit_state(result: PassResult) -> CommitState:
    """What a pass says about its commit, in a few words."""
    stacks = result.stacks
    if result.error:
        return CommitState("error", f"pass failed: {result.error}")
    failed = [s for s in stacks if s.state is StackState.FAILED]
    if failed:
        return CommitState("failure", f"{failed[0].stack} failed: {failed[0].reason}")
    blocked = [s for s in stacks if s.state is StackState.BLOCKED]
    if blocked:  # by policy, by the mass-prune guard, or by a failed dependency
        return CommitState("failure", f"{blocked[0].stack} blocked: {blocked[0].reason}")
    held = [s for s in stacks if s.state in (StackState.HELD, StackState.SUSPENDED)]
    if held:
        until = f" until {result.held_until:%Y-%m-%d %H:%M} UTC" if result.held_until else ""
        return CommitState("pending", f"{held[0].stack} {held[0].state.value}{until}: {held[0].reason}")
    if result.pins:
        return CommitState("pending", f"{len(result.pins)} stack(s) pinned at an earlier commit")
    return CommitState("success", f"{len(stacks)} stack(s) applied and healthy")


def context_of(env: EnvironmentConfig, config: CommitStatusConfig) -> str:
    """`healthflow/<env>@<cluster>` unless the environment names its own."""
    if config.context:
        return config.context
    cluster = env.cluster.context or ("in-cluster" if env.cluster.in_cluster else "default")
    return f"healthflow/{env.name}@{cluster}"


def status_request(config: CommitStatusConfig, token: str, sha: str, context: str, state: CommitState,
                   target_url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL, headers, JSON body) of one status, as the provider's API documents it."""
    api = config.api_url.rstrip("/")
    description = state.description[:137] + "..." if len(state.description) > 140 else state.description
    if config.provider == "gitlab":
        url = f"{api}/api/v4/projects/{quote(config.repository, safe='')}/statuses/{sha}"
        body = {"state": _GITLAB_STATE[state.state], "name": context, "description": description}
        headers = {"PRIVATE-TOKEN": token}
    elif config.provider == "gitea":
        url = f"{api}/api/v1/repos/{config.repository}/statuses/{sha}"
        body = {"state": state.state, "context": context, "description": description}
        headers = {"Authorization": f"token {token}"}
    else:
        url = f"{api}/repos/{config.repository}/statuses/{sha}"
        body = {"state": state.state, "context": context, "description": description}
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                   "X-GitHub-Api-Version": "2022-11-28"}
    if target_url:
        body["target_url"] = target_url
    return url, headers, body


class CommitStatusPublisher:
    """Posts one status per pass of every environment that has `commitStatus`, on one background thread."""

    def __init__(self, token: str | None, status_url: str = "", retry: RetryPolicy | None = None) -> None:
        self.token = token
        self.status_url = status_url
        self.retry = retry or RetryPolicy()
        self.sent: list[tuple[str, str, str]] = []  # (env, sha, state), newest last: what the page and tests read
        self._queue: queue.Queue[tuple[EnvironmentConfig, PassResult] | None] = queue.Queue(maxsize=1000)
        self._thread = threading.Thread(target=self._loop, name="commit-status", daemon=True)
        self._thread.start()

    def publish(self, env: EnvironmentConfig, result: PassResult) -> None:
        if env.commit_status is None or result.dry_run or result.commit is None:
            return
        if not self.token:
            log.warning("commitStatus is set but RECONCILER_COMMIT_STATUS_TOKEN is not", env=env.name)
            return
        try:
            self._queue.put_nowait((env, result))
        except queue.Full:
            log.error("commit status queue full, status dropped", env=env.name)

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            env, result = item
            self._send(env, result)
            self._queue.task_done()

    def _send(self, env: EnvironmentConfig, result: PassResult) -> None:
        config, sha = env.commit_status, result.commit.sha
        state = commit_state(result)
        target = f"{self.status_url.rstrip('/')}/#env={env.name}" if self.status_url else ""
        url, headers, body = status_request(config, self.token or "", sha, context_of(env, config), state, target)

        def post() -> None:
            response = requests.post(url, json=body, headers=headers, timeout=10)
            if response.status_code >= 300:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")

        try:
            retry_call(post, self.retry, what=f"commit status for {env.name}")
            self.sent.append((env.name, sha, state.state))
        except Exception as exc:  # noqa: BLE001 - a host that is down is logged, never raised into the daemon
            log.warning("commit status not sent", env=env.name, commit=sha[:10], error=redact_text(str(exc)))

    def flush(self) -> None:
        """Wait until every queued status was sent or given up (tests, shutdown)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
