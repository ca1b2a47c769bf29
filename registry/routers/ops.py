"""Operations: ``/healthz`` and Prometheus ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from registry.deps import RegistryDep

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness and database reachability")
def healthz(reg: RegistryDep) -> Any:
    with reg.db.read_session() as session:
        session.connection().execute(text("SELECT 1"))
    return {"status": "ok", "origin": reg.log.origin}


@router.get("/metrics", summary="Prometheus metrics")
def metrics(reg: RegistryDep) -> Response:
    return Response(generate_latest(reg.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/ping", summary="A trivial endpoint: the framework's ceiling, for benchmarks")
async def ping() -> Any:
    return {"ok": True}
