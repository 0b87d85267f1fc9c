"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.api.deps import RuntimeDep
from bot.api.schemas import HealthPublic
from bot.prometheus import REGISTRY
from storage.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthPublic)
def healthz(runtime: RuntimeDep):
    db_ok = ping(runtime.engine)
    body = {"status": "ok" if db_ok else "degraded", "database": "ok" if db_ok else "unavailable",
            "models": runtime.models_status()}
    return JSONResponse(body, status_code=200 if db_ok else 503)


@router.get("/metrics", response_class=Response)
def metrics():
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
