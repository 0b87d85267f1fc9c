"""The HTTP app: API under /v1, health and metrics, the Gradio UI at /.

Errors are always JSON, `{"error": {"type", "message"}}`: 4xx for the caller's mistakes,
503 when the database is down, 500 (without a traceback) for our own bugs.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from bot.api.auth import AuthError
from bot.api.schemas import ErrorPublic, HealthPublic
from bot.api.routes import chat, conversations, feedback, health, model_versions, sentiment
from bot.errors import (ConflictError, DatabaseUnavailableError, InputError, ModelLoadError, ModelNotFoundError, NotFoundError,
                        PayloadTooLargeError)
from bot.generation import GenerationError
from bot.metrics import HTTP_LATENCY, HTTP_REQUESTS
from bot.ratelimit import RateLimitedError, RateLimiter
from bot.runtime import Runtime

log = logging.getLogger(__name__)


# Every error a /v1 call can answer, documented in /openapi.json with its JSON body.
ERROR_RESPONSES = {status: {"model": ErrorPublic, "description": what} for status, what in {
    400: "malformed JSON, or a body that is not UTF-8", 401: "missing or invalid API key",
    403: "the key lacks the admin scope", 404: "unknown id, model or endpoint", 409: "a replay or conflict",
    413: "too many or too long texts", 422: "a wrong body or parameter", 429: "rate limited (see Retry-After)",
    503: "the database or a model is unavailable (see Retry-After)"}.items()}


def error(status: int, type_: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_req, exc: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error(400, "invalid_json", "the request body is not valid JSON: " + _validation_message(exc))
        return error(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's words
            return error(400, "invalid_json", "the request body is not valid JSON in UTF-8: send a JSON object")
        return error(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(AuthError)
    async def _auth(_req, exc: AuthError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", str(exc), headers)

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(_req, exc):
        return error(413, "payload_too_large", str(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(_req, exc):
        return error(409, "conflict", str(exc))

    @app.exception_handler(InputError)
    async def _input(_req, exc):
        return error(422, "invalid_request", str(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(_req, exc):
        return error(404, "not_found", str(exc))

    @app.exception_handler(RateLimitedError)
    async def _rate_limited(_req, exc: RateLimitedError):
        return error(429, "rate_limited", str(exc), {"Retry-After": exc.retry_after})

    @app.exception_handler(DatabaseUnavailableError)
    async def _db(_req, exc):
        return error(503, "database_unavailable", str(exc), {"Retry-After": "5"})

    @app.exception_handler(GenerationError)
    async def _generation(_req, exc):
        return error(503, "generation_failed", str(exc), {"Retry-After": "5"})

    @app.exception_handler(ModelNotFoundError)
    @app.exception_handler(ModelLoadError)
    async def _model(_req, exc):
        return error(503, "model_unavailable", str(exc))

    @app.exception_handler(Exception)
    async def _internal(_req, exc):
        log.exception("unhandled error")
        return error(500, "internal_error", "internal server error; see the server log")


def create_app(runtime: Runtime, *, ui: bool = True) -> FastAPI:
    app = FastAPI(title="supportbot", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    app.state.runtime = runtime
    app.state.rate_limiter = RateLimiter(runtime.settings.rate_limit_per_minute, runtime.settings.rate_limit_burst)
    install_error_handlers(app)

    max_body = runtime.settings.max_request_bytes

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        """One caller's request may not make the server read more than max_request_bytes."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return error(413, "payload_too_large", f"the request body is over {max_body} bytes")
        return await call_next(request)

    @app.middleware("http")
    async def _metrics(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "other")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(path).observe(time.perf_counter() - started)
        return response

    app.include_router(health.router, responses={503: {"model": HealthPublic, "description": "the database is down"}})
    for router in (sentiment.router, chat.router, conversations.router, feedback.router, model_versions.router):
        app.include_router(router, responses=ERROR_RESPONSES)

    catch_all = "/v1/{path:path}"

    @app.api_route(catch_all, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def _unknown(path: str, request: Request):  # JSON 404/405 under /v1, before the UI mount catches all
        probe = {**request.scope, "method": "__none__"}  # matches a known path only PARTIALly
        for route in app.router.routes:
            if getattr(route, "path", None) != catch_all and route.matches(probe)[0] == Match.PARTIAL:
                return error(405, "method_not_allowed", f"{request.method} is not allowed on /v1/{path}")
        return error(404, "not_found", f"no such endpoint: /v1/{path}")
    if ui:
        from ui.app import mount_ui

        app = mount_ui(app, runtime)  # the staff UI at /, the open customer chat at /chat
    return app
