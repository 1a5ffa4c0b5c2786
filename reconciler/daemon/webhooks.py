"""Git push webhooks (GitHub, GitLab): authenticate, parse, and match against watched environments.

Pure functions on bytes and headers, so the HTTP layer stays thin and this logic is testable on
plain data. Comparisons of secrets are constant-time (`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""GitHub caps payloads at 25 MB, but a push of a config repo is a few KB; 1 MiB leaves headroom."""


class WebhookError(Exception):
    """A webhook request that must be refused; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DeliveryLog:
    """Webhooks seen in the last hour, keyed by what the signature covers (`replay_key`): a signed request
    replayed by someone who captured it runs nothing, whatever delivery id header they put on it (the
    header is not signed). Bounded in time and size."""

    def __init__(self, ttl_s: float = 3600.0, max_entries: int = 10000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, delivery: str) -> bool:
        """True (and remembered) the first time a key is seen."""
        now = time.monotonic()
        with self._lock:
            while self._seen and (len(self._seen) >= self.max_entries or now - next(iter(self._seen.values())) > self.ttl_s):
                self._seen.pop(next(iter(self._seen)))
            if delivery in self._seen:
                return False
            self._seen[delivery] = now
            return True


def replay_key(provider: str, body: bytes, push: "PushEvent | None") -> str:
    """What makes a delivery the same one again, from the signed body only: for a push its repository,
    branch and `after` commit (a redelivery of the same push is the same request); else the body."""
    if push is not None:
        return f"{provider} push {'|'.join(push.repo_urls)} {push.branch} {push.after}"
    return f"{provider} body {hashlib.sha256(body).hexdigest()}"


@dataclass(frozen=True)
class PushEvent:
    provider: str
    repo_urls: tuple[str, ...]
    branch: str
    after: str
    pusher: str = ""


@dataclass(frozen=True)
class WebhookOutcome:
    """What a webhook request amounts to: a push to act on, or a reason to ignore it."""

    push: PushEvent | None
    ignored: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str | None, body: bytes, header: str | None) -> None:
    """Raise 401 unless `X-Hub-Signature-256` is the HMAC-SHA256 of the body with our secret."""
    if not secret:
        raise WebhookError(401, "GitHub webhook secret not configured; refusing unauthenticated webhooks")
    if not header or not hmac.compare_digest(github_signature(secret, body).encode(), header.strip().encode()):
        raise WebhookError(401, "bad or missing X-Hub-Signature-256")


def verify_gitlab(secret: str | None, header: str | None) -> None:
    """Raise 401 unless `X-Gitlab-Token` equals our token (GitLab sends the token itself, not an HMAC)."""
    if not secret:
        raise WebhookError(401, "GitLab webhook token not configured; refusing unauthenticated webhooks")
    if not header or not hmac.compare_digest(secret.encode(), header.strip().encode()):
        raise WebhookError(401, "bad or missing X-Gitlab-Token")


def _json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise WebhookError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise WebhookError(400, "body is not a JSON object")
    return payload


def _object(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """A nested JSON object of the payload; anything else there is a malformed push (400), not a crash."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebhookError(400, f"{key!r} in the body is not a JSON object")
    return value


def _branch(ref: str) -> str | None:
    return ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None


def parse_github(event: str | None, body: bytes) -> WebhookOutcome:
    if event == "ping":
        return WebhookOutcome(None, ignored="ping", extra={"pong": True})
    if event != "push":
        return WebhookOutcome(None, ignored=f"event {event!r} is not handled")
    payload = _json(body)
    repo = _object(payload, "repository")
    urls = tuple(str(repo[k]) for k in ("clone_url", "ssh_url", "git_url", "html_url", "url") if repo.get(k))
    return _push("github", payload, urls, str(_object(payload, "pusher").get("name", "")))


def parse_gitlab(event: str | None, body: bytes) -> WebhookOutcome:
    if event != "Push Hook":
        return WebhookOutcome(None, ignored=f"event {event!r} is not handled")
    payload = _json(body)
    project = _object(payload, "project")
    repo = _object(payload, "repository")
    keys = ("git_http_url", "git_ssh_url", "web_url", "http_url", "ssh_url", "url", "homepage")
    urls = tuple(str(d[k]) for d in (project, repo) for k in keys if d.get(k))
    return _push("gitlab", payload, urls, str(payload.get("user_username", "")))


def _push(provider: str, payload: Mapping[str, Any], urls: tuple[str, ...], pusher: str) -> WebhookOutcome:
    branch = _branch(str(payload.get("ref", "")))
    if branch is None:
        return WebhookOutcome(None, ignored=f"ref {payload.get('ref')!r} is not a branch")
    if payload.get("deleted"):
        return WebhookOutcome(None, ignored=f"branch {branch!r} was deleted")
    if not urls:
        raise WebhookError(400, "push event without a repository URL")
    return WebhookOutcome(PushEvent(provider, urls, branch, str(payload.get("after", "")), pusher))


_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def normalize_repo_url(url: str) -> str:
    """One spelling per repository: `git@github.com:o/r.git`, `https://github.com/o/r` -> `github.com/o/r`.

    Local paths and `file://` URLs resolve to an absolute path, so test repositories match too.
    """
    text = url.strip()
    if text.startswith("file://"):
        return str(Path(text[len("file://"):]).resolve()).rstrip("/").removesuffix(".git")
    if text.startswith("/") or text.startswith("."):
        return str(Path(text).resolve()).rstrip("/").removesuffix(".git")
    match = re.match(r"^[a-z][a-z0-9+.-]*://(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?/(?P<path>.*)$", text, re.I)
    if not match:
        match = _SCP_LIKE.match(text)
    if not match:
        return text.rstrip("/").removesuffix(".git").lower()
    path = match.group("path").strip("/").removesuffix(".git")
    return f"{match.group('host').lower()}/{path.lower()}"


def matching_environments(push: PushEvent, watched: Iterable[tuple[str, str, str]]) -> list[str]:
    """Names of the environments `(name, url, branch)` that watch the pushed repository and branch."""
    pushed = {normalize_repo_url(u) for u in push.repo_urls}
    return [name for name, url, branch in watched if branch == push.branch and normalize_repo_url(url) in pushed]
