"""Log lines an operator's tools can read: time, level, logger, message and the id of the
request being handled.

`SUPPORTBOT_LOG_FORMAT=plain` (the default) writes one readable line per record;
`json` writes one JSON object per line (`time` in UTC ISO 8601, `level`, `logger`,
`message`, `request_id` while a request is handled, `exception` with the traceback):

    {"time": "2026-05-01T09:30:12.345Z", "level": "WARNING", "logger": "bot.dialogue",
     "message": "generation failed, answering from the article: ...", "request_id": "4f1c..."}

The request id comes from the caller's `X-Request-ID` header (when it is a sane token) or
is made here; it is sent back in the response's `X-Request-ID` and kept in a contextvar,
so every line logged while the request is handled carries it: the dialogue's lines too,
since FastAPI runs handlers and streamed bodies with the request's context.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import datetime, timezone

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("supportbot_request_id", default=None)
HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")  # what we accept from a caller (no log injection)

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"


def request_id_from(header: str | None) -> str:
    """The caller's id when it is a short token of safe characters, else a new one."""
    if header and _SANE.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) and `request_tag` (" [id]" or "") to
    every record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = REQUEST_ID.get()
        record.request_id = rid
        record.request_tag = f" [{rid}]" if rid else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
               .replace("+00:00", "Z"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        rid = getattr(record, "request_id", None) or REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def make_handler(fmt: str = "plain", stream=None) -> logging.Handler:
    if fmt not in ("plain", "json"):
        raise ValueError(f"log format {fmt!r}: use plain or json")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(PLAIN_FORMAT))
    return handler


def configure(fmt: str = "plain", level: int = logging.INFO, stream=None) -> logging.Handler:
    """One handler on the root logger in `fmt` (replacing what basicConfig put there).
    With `json`, uvicorn's loggers are sent to it too (serve them with log_config=None)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level)
    if fmt == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    return handler


class RequestIdMiddleware:
    """Pure ASGI (so the id is also set while the response is sent and access-logged):
    takes or makes the request id, sets the contextvar, returns it in `X-Request-ID`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER.encode()), None)
        rid = request_id_from(given)
        token = REQUEST_ID.set(rid)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER.encode()]
                headers.append((HEADER.encode(), rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
