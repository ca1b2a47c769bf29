"""Operations: ``/healthz`` and Prometheus ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from registry.api_models import Health, errors, ok, ok_text
from registry.deps import ReaderDep, RegistryDep

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    operation_id="healthz",
    summary="Liveness, database reachability and log integrity",
    responses=ok(Health, "Serving.")
    | {503: {"model": Health, "description": "The log failed its integrity check."}},
)
def healthz(reg: RegistryDep) -> Any:
    with reg.db.read_session() as session:
        session.connection().execute(text("SELECT 1"))
    if reg.log.broken is not None:  # a load balancer should drain this instance
        return JSONResponse(
            {"status": "log-integrity-failure", "origin": reg.log.origin, "error": reg.log.broken}, 503
        )
    return {"status": "ok", "origin": reg.log.origin}


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=PlainTextResponse,
    dependencies=[ReaderDep],
    summary="Prometheus metrics (a token when reads need one)",
    responses=ok_text("Prometheus text format.") | errors(401, 429),
)
def metrics(reg: RegistryDep) -> Response:
    return Response(generate_latest(reg.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/v1/ping", operation_id="ping", summary="A trivial endpoint: the framework's ceiling, for benchmarks"
)
async def ping() -> Any:
    return {"ok": True}
