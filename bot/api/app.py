"""The HTTP API: /v1, health and metrics (app/server.py mounts the Gradio UI at / on it).

Errors are always JSON, `{"error": {"type", "message"}}`: 4xx for the caller's mistakes,
503 when the database is down, 500 (without a traceback) for our own bugs. The
OpenAI-compatible endpoints (/v1/chat/completions, /v1/models) answer in OpenAI's shape
instead, `{"error": {"message", "type", "param", "code"}}` with OpenAI's types, and a
malformed request there is 400 (not 422), as OpenAI clients expect.

Every response carries an `X-Request-ID` (the caller's, or a new one), which is also in
every log line written while the request is handled (bot.logs).
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
from bot.api.schemas import ErrorPublic, HealthPublic, OpenAIErrorPublic
from bot.api.routes import chat, conversations, feedback, health, model_versions, review_queue, sentiment
from core.errors import (ConflictError, DatabaseUnavailableError, InputError, ModelLoadError, ModelNotFoundError, NotFoundError,
                        PayloadTooLargeError)
from bot.generation import GenerationError
from bot.logs import RequestIdMiddleware
from bot.prometheus import HTTP_LATENCY, HTTP_REQUESTS, RATE_LIMITED
from bot.ratelimit import RateLimitedError, RateLimiter
from bot.runtime import Runtime

log = logging.getLogger(__name__)


# Every error a /v1 call can answer, documented in /openapi.json with its JSON body.
ERROR_RESPONSES = {status: {"model": ErrorPublic, "description": what} for status, what in {
    400: "malformed JSON, or a body that is not UTF-8", 401: "missing or invalid API key",
    403: "the key lacks the admin scope", 404: "unknown id, model or endpoint", 409: "a replay or conflict",
    413: "too many or too long texts", 422: "a wrong body or parameter", 429: "rate limited (see Retry-After)",
    503: "the database or a model is unavailable (see Retry-After)"}.items()}


# The OpenAI-compatible endpoints: errors there are shaped, typed and coded as OpenAI's.
OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/models"})
OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 429: "rate_limit_error"}
OPENAI_ERROR_RESPONSES = {status: {"model": OpenAIErrorPublic, "description": what} for status, what in {
    400: "a malformed request: invalid JSON, a wrong body (param names the field), or a message the pipeline "
         "refuses", 401: "missing or invalid API key", 403: "the key lacks the scope", 404: "unknown model or "
    "conversation", 409: "a conflict", 413: "too long messages or body", 429: "rate limited (see Retry-After)",
    503: "the database or a model is unavailable (see Retry-After)"}.items()}
# Any other 4xx (405, ...) is in the same shape; documenting it also keeps FastAPI from
# announcing its own 422 body, which these endpoints never send.
OPENAI_ERROR_RESPONSES["4XX"] = {"model": OpenAIErrorPublic, "description": "any other client error"}


def is_openai_path(request: Request | None) -> bool:
    return request is not None and request.url.path.rstrip("/") in OPENAI_PATHS


def error(status: int, type_: str, message: str, headers: dict | None = None, *, request: Request | None = None,
          param: str | None = None, code: str | None = None) -> JSONResponse:
    """A JSON error. On the OpenAI-compatible endpoints: OpenAI's shape, with `code` (else our
    `type_`) as its code, and 400 for what the other endpoints answer 422."""
    if is_openai_path(request):
        if status == 422:
            status = 400
        kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"message": message, "type": kind, "param": param, "code": code or type_}
        return JSONResponse({"error": body}, status_code=status, headers=headers)
    return JSONResponse({"error": {"type": type_, "message": message}}, status_code=status, headers=headers)


def _validation_param(exc: RequestValidationError) -> str | None:
    """The first field at fault, as OpenAI names it: messages[0].role."""
    for e in exc.errors():
        loc = [p for p in e.get("loc", ()) if p != "body"]
        if loc:
            return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
    return None


def _validation_code(exc: RequestValidationError) -> str:
    """OpenAI's code for the first problem: a missing field, a wrong type or a wrong value."""
    kind = next((str(e.get("type", "")) for e in exc.errors()), "")
    if kind == "missing":
        return "missing_required_parameter"
    if kind.endswith(("_type", "_parsing")):
        return "invalid_type"
    return "invalid_value"


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        where = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def _openai_detail(exc: Exception) -> dict:
    """`param` and `code` a route attached to an exception for OpenAI's error shape
    (bot.api.routes.chat), e.g. param "model", code "model_not_found"."""
    return {"param": getattr(exc, "openai_param", None), "code": getattr(exc, "openai_code", None)}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(req, exc: RequestValidationError):
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error(400, "invalid_json", "the request body is not valid JSON: " + _validation_message(exc),
                         request=req)
        return error(422, "invalid_request", _validation_message(exc), request=req, param=_validation_param(exc),
                     code=_validation_code(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(req, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":  # FastAPI's words
            return error(400, "invalid_json", "the request body is not valid JSON in UTF-8: send a JSON object",
                         request=req)
        return error(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None), request=req)

    @app.exception_handler(AuthError)
    async def _auth(req, exc: AuthError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if is_openai_path(req):  # OpenAI's codes
            code = "invalid_api_key" if exc.status == 401 else "insufficient_scope"
            return error(exc.status, code, str(exc), headers, request=req, param=_openai_detail(exc)["param"])
        return error(exc.status, "unauthorized" if exc.status == 401 else "forbidden", str(exc), headers)

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(req, exc):
        return error(413, "payload_too_large", str(exc), request=req, **_openai_detail(exc))

    @app.exception_handler(ConflictError)
    async def _conflict(req, exc):
        return error(409, "conflict", str(exc), request=req, **_openai_detail(exc))

    @app.exception_handler(InputError)
    async def _input(req, exc):
        return error(422, "invalid_request", str(exc), request=req, **_openai_detail(exc))

    @app.exception_handler(NotFoundError)
    async def _not_found(req, exc):
        return error(404, "not_found", str(exc), request=req, **_openai_detail(exc))

    @app.exception_handler(RateLimitedError)
    async def _rate_limited(req, exc: RateLimitedError):
        RATE_LIMITED.labels(getattr(req.scope.get("route"), "path", req.url.path)).inc()
        return error(429, "rate_limited", str(exc), {"Retry-After": exc.retry_after}, request=req)

    @app.exception_handler(DatabaseUnavailableError)
    async def _db(req, exc):
        return error(503, "database_unavailable", str(exc), {"Retry-After": "5"}, request=req)

    @app.exception_handler(GenerationError)
    async def _generation(req, exc):
        return error(503, "generation_failed", str(exc), {"Retry-After": "5"}, request=req)

    @app.exception_handler(ModelNotFoundError)
    @app.exception_handler(ModelLoadError)
    async def _model(req, exc):
        return error(503, "model_unavailable", str(exc), request=req)

    @app.exception_handler(Exception)
    async def _internal(req, exc):
        log.exception("unhandled error")
        return error(500, "internal_error", "internal server error; see the server log", request=req)


def create_api(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="supportbot", version="0.1.0", docs_url="/docs", openapi_url="/openapi.json")
    app.state.runtime = runtime
    # Buckets in the database: the limit holds across workers and hosts (bot.ratelimit).
    app.state.rate_limiter = RateLimiter(runtime.settings.rate_limit_per_minute, runtime.settings.rate_limit_burst,
                                         engine=runtime.engine, namespace="api")
    install_error_handlers(app)

    max_body = runtime.settings.max_request_bytes

    @app.middleware("http")
    async def _body_limit(request: Request, call_next):
        """One caller's request may not make the server read more than max_request_bytes."""
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > max_body):
            return error(413, "payload_too_large", f"the request body is over {max_body} bytes", request=request)
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

    app.add_middleware(RequestIdMiddleware)  # outermost: every log line of the request carries its id

    app.include_router(health.router, responses={503: {"model": HealthPublic, "description": "the database is down"}})
    for router in (sentiment.router, conversations.router, feedback.router, review_queue.router, model_versions.router):
        app.include_router(router, responses=ERROR_RESPONSES)
    app.include_router(chat.router, responses=OPENAI_ERROR_RESPONSES)

    catch_all = "/v1/{path:path}"

    @app.api_route(catch_all, methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def _unknown(path: str, request: Request):  # JSON 404/405 under /v1, before the UI mount catches all
        probe = {**request.scope, "method": "__none__"}  # matches a known path only PARTIALly
        for route in app.router.routes:
            if getattr(route, "path", None) != catch_all and route.matches(probe)[0] == Match.PARTIAL:
                return error(405, "method_not_allowed", f"{request.method} is not allowed on /v1/{path}",
                             request=request)
        return error(404, "not_found", f"no such endpoint: /v1/{path}", request=request)
    return app
