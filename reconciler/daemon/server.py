"""HTTP: health, readiness, metrics, status API, manual sync, Git webhooks and the status page.

FastAPI gives the OpenAPI description (`/openapi.json`, `/docs`) for free; uvicorn serves it.
Handlers stay thin: they authenticate, read the daemon's in-memory state or call `Daemon.trigger`,
and never run a pass themselves.
"""

from __future__ import annotations

import hmac
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from reconciler import __version__
from reconciler.daemon.service import Daemon
from reconciler.daemon.status import env_history
from reconciler.daemon.view_routes import add_view_routes
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.logs import get_logger
from reconciler.daemon.metrics import CONTENT_TYPE
from reconciler.daemon.webhooks import (
    DEFAULT_MAX_BODY_BYTES,
    DeliveryLog,
    WebhookError,
    matching_environments,
    parse_github,
    parse_gitlab,
    replay_key,
    verify_github,
    verify_gitlab,
)

log = get_logger("reconciler.daemon.server")
STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ServerSecrets:
    """Read from Secrets / env vars by the CLI; never logged."""

    api_token: str | None = None
    github_secret: str | None = None
    gitlab_token: str | None = None
    read_token: str | None = None  # when set, the GET API needs it (or the API token); probes stay open

    def __repr__(self) -> str:  # a dataclass repr would print the values
        return "ServerSecrets(***)"


class SyncRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    env: str = Field(description="environment to reconcile")
    stack: str | None = Field(None, description="only this stack (default: every stack of the env)")
    allow_mass_prune: bool = Field(False, alias="allowMassPrune",
                                   description="let this pass through the mass-prune guard (once)")


class RollbackRequest(BaseModel):
    env: str = Field(description="environment")
    stack: str | None = Field(None, description="stack to roll back (default: every stack of the env)")
    to: str | None = Field(None, description="commit to go back to (default: the last healthy one in the history)")
    dependents: bool = Field(True, description="also roll back the stacks that depend on it")


class UnpinRequest(BaseModel):
    env: str = Field(description="environment")
    stack: str | None = Field(None, description="only this stack (default: every pinned stack)")


class SuspendRequest(BaseModel):
    env: str = Field(description="environment")
    stack: str | None = Field(None, description="only this stack (default: the whole environment)")
    reason: str = Field(min_length=1, description="why (shown wherever status is shown)")
    by: str = Field(min_length=1, description="who")


class ResumeRequest(BaseModel):
    env: str = Field(description="environment")
    stack: str | None = Field(None, description="the suspended stack (default: the environment's suspension)")


class RunAccepted(BaseModel):
    run_id: str
    env: str
    stack: str | None
    state: str
    url: str


def create_app(daemon: Daemon, secrets: ServerSecrets, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    app = FastAPI(title="HealthFlow reconciler", version=__version__,
                  description="GitOps reconciler daemon: status, manual sync and Git webhooks.")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(RequestValidationError, _invalid_request)
    _add_probe_routes(app, daemon)
    reader = _reader(secrets)
    _add_api_routes(app, daemon, secrets, reader)
    add_view_routes(app, daemon, reader, _known_env, _accepted)
    _add_hook_routes(app, daemon, secrets, max_body_bytes, DeliveryLog())
    return app


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming what is wrong, without echoing the input: FastAPI's own handler echoes it, and fails
    with a 500 when the body is not UTF-8."""
    problems = [{"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
                for error in exc.errors()]
    return JSONResponse(status_code=422, content={"detail": problems})


def _add_probe_routes(app: FastAPI, daemon: Daemon) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz", tags=["probes"], summary="Liveness: the process serves HTTP")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["probes"], summary="Readiness: scheduler running and cluster reachable")
    def readyz() -> JSONResponse:
        ok, reason = daemon.ready()
        return JSONResponse({"ready": ok, "reason": reason}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["probes"], summary="Prometheus metrics of this daemon")
    def metrics() -> Response:
        return Response(daemon.metrics.render(), media_type=CONTENT_TYPE)


def _reader(secrets: ServerSecrets) -> Any:
    def reader(request: Request) -> None:
        """With RECONCILER_READ_TOKEN set, reading state needs it (or the API token) as a bearer token."""
        if secrets.read_token and not any(_bearer_is(request, t) for t in (secrets.read_token, secrets.api_token) if t):
            raise HTTPException(401, "this daemon's state needs the read token (RECONCILER_READ_TOKEN) as a bearer "
                                     "token; in a browser open /#token=<read token>", headers={"WWW-Authenticate": "Bearer"})
    return reader


def _add_api_routes(app: FastAPI, daemon: Daemon, secrets: ServerSecrets, reader: Any) -> None:

    @app.get("/api/status", tags=["status"], summary="Per env and stack: commit, result, health, drift, violations",
             dependencies=[Depends(reader)])
    def status(leader: bool | None = Query(None, description="only the environments this replica leads (true) "
                                                               "or does not (false)")) -> dict[str, Any]:
        return daemon.status(leader)

    @app.get("/api/drift", tags=["status"], summary="The last drift report of an environment",
             dependencies=[Depends(reader)])
    def drift(env: str = Query(..., description="environment name")) -> dict[str, Any]:
        _known_env(daemon, env)
        report = daemon.drift_report(env)
        return {"env": env, "checked": report is not None, "report": report}

    @app.get("/api/runs", tags=["runs"], summary="Recent runs, newest first", dependencies=[Depends(reader)])
    def runs(env: str | None = None, limit: int = Query(20, ge=1, le=200)) -> list[dict[str, Any]]:
        return [r.to_dict(detail=False) for r in daemon.runbook.recent(limit, env)]

    @app.get("/api/runs/{run_id}", tags=["runs"], summary="One run: progress events and result",
             dependencies=[Depends(reader)])
    def run(run_id: str) -> dict[str, Any]:
        found = daemon.runbook.get(run_id)
        if found is None:
            raise HTTPException(404, f"no run {run_id!r} (only the last {daemon.settings.history} are kept)")
        return found.to_dict(detail=True)

    @app.post("/api/sync", status_code=202, tags=["runs"], response_model=RunAccepted,
              summary="Request a pass now (bearer token); returns the run id",
              responses={401: {"description": "missing or wrong bearer token"}, 404: {"description": "unknown env"}})
    def sync(body: SyncRequest, request: Request) -> RunAccepted:
        _require_bearer(request, secrets.api_token)
        env = _known_env(daemon, body.env)
        if body.stack is not None and body.stack not in {s.name for s in env.stacks}:
            raise HTTPException(404, f"environment {body.env!r} has no stack {body.stack!r}")
        accepted = daemon.trigger(body.env, "manual", body.stack,
                                  {"allow_mass_prune": True} if body.allow_mass_prune else None)
        log.info("manual sync requested", env=body.env, stack=body.stack, run_id=accepted.id)
        return _accepted(accepted)

    _add_rollback_routes(app, daemon, secrets, reader)


def _add_rollback_routes(app: FastAPI, daemon: Daemon, secrets: ServerSecrets, reader: Any) -> None:
    @app.get("/api/history", tags=["status"], dependencies=[Depends(reader)],
             summary="Per stack of an environment: its last commits (result, health, when) and its pin, read now")
    def history(env: str = Query(..., description="environment name")) -> dict[str, Any]:
        _known_env(daemon, env)
        try:
            return env_history(daemon, env)
        except ReconcilerError as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.post("/api/rollback", status_code=202, tags=["runs"], response_model=RunAccepted,
              summary="Roll a stack (and its dependents) back to its last healthy commit and pin it (bearer token)",
              responses={401: {"description": "missing or wrong bearer token"}, 404: {"description": "unknown env or stack"},
                         409: {"description": "this replica does not lead the environment"}})
    def rollback(body: RollbackRequest, request: Request) -> RunAccepted:
        _require_bearer(request, secrets.api_token)
        run = _queue_action(daemon, body.env, body.stack, "rollback",
                            {"to": body.to, "dependents": body.dependents, "by": "api"})
        log.info("rollback requested", env=body.env, stack=body.stack, to=body.to, run_id=run.id)
        return _accepted(run)

    @app.post("/api/unpin", status_code=202, tags=["runs"], response_model=RunAccepted,
              summary="Lift pins: the next pass applies the branch head (bearer token)")
    def unpin(body: UnpinRequest, request: Request) -> RunAccepted:
        _require_bearer(request, secrets.api_token)
        run = _queue_action(daemon, body.env, body.stack, "unpin", {})
        return _accepted(run)

    @app.post("/api/suspend", status_code=202, tags=["runs"], response_model=RunAccepted,
              summary="Suspend an environment or a stack: nothing applied, pruned or corrected until resumed (bearer token)")
    def suspend(body: SuspendRequest, request: Request) -> RunAccepted:
        _require_bearer(request, secrets.api_token)
        run = _queue_action(daemon, body.env, body.stack, "suspend", {"by": body.by, "reason": body.reason})
        log.info("suspend requested", env=body.env, stack=body.stack, by=body.by, run_id=run.id)
        return _accepted(run)

    @app.post("/api/resume", status_code=202, tags=["runs"], response_model=RunAccepted,
              summary="Lift a suspension; the pass that follows reconciles again (bearer token)")
    def resume(body: ResumeRequest, request: Request) -> RunAccepted:
        _require_bearer(request, secrets.api_token)
        run = _queue_action(daemon, body.env, body.stack, "resume", {})
        return _accepted(run)


def _accepted(run: Any) -> RunAccepted:
    """The 202 answer to a queued run: its id, where it runs, and where to follow it."""
    return RunAccepted(run_id=run.id, env=run.env, stack=run.stack, state=run.state.value, url=f"/api/runs/{run.id}")


def _queue_action(daemon: Daemon, env_name: str, stack: str | None, action: str, options: dict[str, Any]) -> Any:
    env = _known_env(daemon, env_name)
    if stack is not None and stack not in {s.name for s in env.stacks}:
        raise HTTPException(404, f"environment {env_name!r} has no stack {stack!r}")
    if not daemon.may_apply(env_name):
        raise HTTPException(409, f"this replica does not lead {env_name!r}; send the {action} to the leader")
    return daemon.request_action(env_name, action, stack, options)


def _known_env(daemon: Daemon, name: str) -> Any:
    env = daemon.envs.get(name)
    if env is None:
        raise HTTPException(404, f"unknown environment {name!r}; known: {', '.join(sorted(daemon.envs))}")
    return env


def _require_bearer(request: Request, token: str | None) -> None:
    if not token:
        raise HTTPException(403, "manual sync is disabled: no API token configured (RECONCILER_API_TOKEN)")
    if not _bearer_is(request, token):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


def _bearer_is(request: Request, token: str) -> bool:
    """The request's `Authorization: Bearer` equals `token` (compared in constant time)."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _add_hook_routes(app: FastAPI, daemon: Daemon, secrets: ServerSecrets, max_body_bytes: int,
                     deliveries: DeliveryLog) -> None:
    @app.post("/hooks/github", tags=["webhooks"], status_code=202,
              summary="GitHub push webhook (X-Hub-Signature-256 HMAC)",
              responses={401: {"description": "bad signature"}, 413: {"description": "body too large"}})
    async def github(request: Request) -> JSONResponse:
        return await _handle_hook(request, "github", daemon, secrets, max_body_bytes, deliveries)

    @app.post("/hooks/gitlab", tags=["webhooks"], status_code=202,
              summary="GitLab push webhook (X-Gitlab-Token)",
              responses={401: {"description": "bad token"}, 413: {"description": "body too large"}})
    async def gitlab(request: Request) -> JSONResponse:
        return await _handle_hook(request, "gitlab", daemon, secrets, max_body_bytes, deliveries)


async def _read_limited(request: Request, limit: int) -> bytes:
    """Refuse before reading when Content-Length says too much; count while streaming otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise WebhookError(413, f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise WebhookError(413, f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _handle_hook(request: Request, provider: str, daemon: Daemon, secrets: ServerSecrets,
                       limit: int, deliveries: DeliveryLog) -> JSONResponse:
    try:
        body = await _read_limited(request, limit)
        if provider == "github":
            verify_github(secrets.github_secret, body, request.headers.get("x-hub-signature-256"))
            outcome = parse_github(request.headers.get("x-github-event"), body)
        else:
            verify_gitlab(secrets.gitlab_token, request.headers.get("x-gitlab-token"))
            outcome = parse_gitlab(request.headers.get("x-gitlab-event"), body)
    except WebhookError as exc:
        daemon.metrics.webhooks.labels(provider, str(exc.status)).inc()
        log.warning("webhook refused", provider=provider, status=exc.status, reason=exc.message)
        return JSONResponse({"error": exc.message}, status_code=exc.status)
    delivery = request.headers.get("x-github-delivery" if provider == "github" else "x-gitlab-event-uuid")
    if not deliveries.first_time(replay_key(provider, body, outcome.push)):
        daemon.metrics.webhooks.labels(provider, "duplicate").inc()
        log.warning("webhook replayed", provider=provider, delivery=delivery)
        return JSONResponse({"ignored": "duplicate", "delivery": delivery}, status_code=202)
    if outcome.push is None:
        daemon.metrics.webhooks.labels(provider, "ignored").inc()
        return JSONResponse({"ignored": outcome.ignored, **outcome.extra}, status_code=202)
    envs = matching_environments(outcome.push, daemon.watched())
    runs = await run_in_threadpool(daemon.trigger_all, envs, f"webhook:{provider}")  # off the event loop:
    # forwarding writes to API servers, and meanwhile /healthz, /api/status and other hooks are answered
    daemon.metrics.webhooks.labels(provider, "triggered" if runs else "unmatched").inc()
    log.info("push received", provider=provider, branch=outcome.push.branch, after=outcome.push.after,
             envs=envs)
    return JSONResponse({
        "triggered": [{"env": r.env, "run_id": r.id, "state": r.state.value} for r in runs],
        "ignored": "" if runs else f"no environment watches this repository on branch {outcome.push.branch!r}",
    }, status_code=202)


class ServerThread:
    """uvicorn in a background thread: the main thread keeps signal handling (see reconciler.cli.run)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self.host, self.requested_port = host, port
        self._server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None,
                                                     access_log=False, lifespan="off",
                                                     timeout_graceful_shutdown=2))  # open event streams
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Listen, or raise ConfigError naming the address (a port in use is one line, not a traceback)."""
        self._check_address()
        self._thread.start()
        waited = threading.Event()
        for _ in range(int(timeout_s / 0.05)):
            if self._server.started or not self._thread.is_alive():
                break
            waited.wait(0.05)
        if not self._server.started:
            raise RuntimeError("HTTP server did not start (address in use?)")

    def _check_address(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
                probe.bind((self.host, self.requested_port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self.host}:{self.requested_port}: {exc.strerror}",
                              fix="stop the process using that port, or pass --listen with a free address "
                                  "(RECONCILER_LISTEN)") from exc

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
