"""Structured logging for the daemon: one event per line, JSON when nobody is watching a terminal.

Why a module of its own: every thread of the daemon (scheduler, per-environment workers, HTTP
server, alert delivery) must log the same way, with `env`, `stack`, `commit` and `run_id` bound,
and no secret may ever reach a log line. Redaction is a processor, so it applies to every event,
whoever wrote it, after the traceback of an exception has been turned into text (tracebacks are
plain: no local variables, which could hold anything).
"""

from __future__ import annotations

import logging as std_logging
import re
import sys
from contextlib import contextmanager
from typing import Any, Iterator, MutableMapping, TextIO

import structlog

SECRET_KEY_PATTERN = re.compile(r"(token|secret|password|passwd|authorization|signature|api[_-]?key|credential)", re.I)
"""Keys whose values are never logged, whatever they hold."""

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@", re.I)
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_HUB_SIGNATURE = re.compile(r"sha256=[0-9a-f]{64}")

REDACTED = "***"


def redact_text(text: str) -> str:
    """Strip credentials out of free text: `https://user:token@host` -> `https://***@host`, bearer tokens, signatures."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _HUB_SIGNATURE.sub(f"sha256={REDACTED}", text)


def redact_value(key: str, value: Any) -> Any:
    if SECRET_KEY_PATTERN.search(key):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    return value


def redact_processor(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the last line of defence against a token in a log line."""
    for key in list(event_dict):
        event_dict[key] = redact_value(key, event_dict[key])
    return event_dict


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog (and the stdlib loggers uvicorn/apscheduler use) for the whole process.

    `fmt`: `json`, `console` or `auto` (JSON unless `stream` is a terminal).
    """
    out = stream or sys.stderr
    as_json = fmt == "json" or (fmt == "auto" and not _isatty(out))
    numeric = std_logging.getLevelName(level.upper())
    numeric = numeric if isinstance(numeric, int) else std_logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # the traceback becomes text here, before redaction reads it
        redact_processor,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(out, numeric, as_json, shared)


def _route_stdlib(out: TextIO, level: int, as_json: bool, shared: list[Any]) -> None:
    """Send uvicorn's and APScheduler's stdlib records through the same renderer and redaction."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer(colors=False),
        ],
    )
    handler = std_logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = std_logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        std_logger = std_logging.getLogger(name)
        std_logger.handlers = []
        std_logger.propagate = True
    std_logging.getLogger("apscheduler").setLevel(max(level, std_logging.WARNING))
    std_logging.getLogger("uvicorn.access").setLevel(max(level, std_logging.WARNING))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str = "reconciler") -> Any:
    return structlog.get_logger(name)


@contextmanager
def bound(**values: Any) -> Iterator[None]:
    """Bind `env`, `stack`, `commit`, `run_id` (or anything) to every event logged inside, in this thread."""
    clean = {k: v for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**clean):
        yield
