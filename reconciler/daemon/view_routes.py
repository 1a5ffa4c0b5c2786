"""HTTP routes the status page's views read: a stack's objects, one object's diff, plans and previews
(queued as reads), and the two event streams. Reading needs what `GET /api/status` needs."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from reconciler.daemon.events import run_progress, status_changes
from reconciler.daemon.objects import FILTERS, ObjectViews
from reconciler.daemon.service import Daemon
from reconciler.errors import ReconcilerError

STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class PlanRequest(BaseModel):
    env: str = Field(description="environment")
    stack: str | None = Field(None, description="only this stack (default: every stack)")


class PreviewRequest(BaseModel):
    env: str = Field(description="environment")
    revision: str = Field(min_length=1, max_length=200, description="branch, tag or commit to preview")
    base: str | None = Field(None, max_length=200, description="compare with this (default: where it branched)")
    cluster: bool = Field(True, description="dry-run against the cluster too (prunes from the inventory)")


def add_view_routes(app: FastAPI, daemon: Daemon, reader: Callable[..., None],
                    known_env: Callable[[Daemon, str], Any], accepted: Callable[[Any], Any]) -> None:
    views = ObjectViews(daemon)

    def known_stack(env: str, stack: str) -> None:
        if stack not in {s.name for s in known_env(daemon, env).stacks}:
            raise HTTPException(404, f"environment {env!r} has no stack {stack!r}")

    @app.get("/api/objects", tags=["status"], dependencies=[Depends(reader)],
             summary="A stack's objects: health and why, drift, applied commit, violations (filtered, searched, paged)")
    def objects(env: str, stack: str, show: str = Query("all", description=" | ".join(FILTERS)),
                q: str = Query("", max_length=200, description="words every shown kind/namespace/name contains"),
                offset: int = Query(0, ge=0), limit: int = Query(500, ge=1, le=5000)) -> dict[str, Any]:
        known_stack(env, stack)
        if show not in FILTERS:
            raise HTTPException(422, f"show must be one of {', '.join(FILTERS)}")
        try:
            return views.page(env, stack, show=show, search=q, offset=offset, limit=limit)
        except ReconcilerError as exc:
            raise HTTPException(503, str(exc)) from exc

    @app.get("/api/object", tags=["status"], dependencies=[Depends(reader)],
             summary="One object of a stack: its row and its drift, field by field and as a unified diff")
    def one_object(env: str, stack: str, id: str = Query(..., description="group/kind/namespace/name")) -> dict[str, Any]:
        known_stack(env, stack)
        try:
            found = views.detail(env, stack, id)
        except ReconcilerError as exc:
            raise HTTPException(503, str(exc)) from exc
        if found is None:
            raise HTTPException(404, f"stack {stack!r} of {env!r} has no object {id!r}")
        return found

    @app.post("/api/plan", status_code=202, tags=["runs"], dependencies=[Depends(reader)],
              summary="Queue a plan: what the next pass would apply, per object with a diff (writes nothing)")
    def plan(body: PlanRequest) -> Any:
        if body.stack is not None:
            known_stack(body.env, body.stack)
        else:
            known_env(daemon, body.env)
        return accepted(daemon.request_action(body.env, "plan", body.stack, {}))

    @app.post("/api/preview", status_code=202, tags=["runs"], dependencies=[Depends(reader)],
              summary="Queue a preview of a branch against the environment (writes nothing)")
    def preview(body: PreviewRequest) -> Any:
        known_env(daemon, body.env)
        options = {"revision": body.revision, "base": body.base, "cluster": body.cluster}
        return accepted(daemon.request_action(body.env, "preview", None, options))

    _add_stream_routes(app, daemon, reader)


def _add_stream_routes(app: FastAPI, daemon: Daemon, reader: Callable[..., None]) -> None:
    @app.get("/api/events", tags=["status"], dependencies=[Depends(reader)],
             summary="Server-sent events: `changed` whenever what /api/status shows moves on")
    async def events(request: Request) -> StreamingResponse:
        return StreamingResponse(status_changes(daemon, request.is_disconnected), media_type="text/event-stream",
                                 headers=STREAM_HEADERS)

    @app.get("/api/runs/{run_id}/events", tags=["runs"], dependencies=[Depends(reader)],
             summary="Server-sent events of one run: each progress event, its state, and `done` with the record")
    async def run_events(run_id: str, request: Request) -> StreamingResponse:
        run = daemon.runbook.get(run_id)
        if run is None:
            raise HTTPException(404, f"no run {run_id!r} (only the last {daemon.settings.history} are kept)")
        return StreamingResponse(run_progress(daemon, run, request.is_disconnected), media_type="text/event-stream",
                                 headers=STREAM_HEADERS)
