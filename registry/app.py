"""The FastAPI application factory: ``create_app(settings)`` builds one independent registry."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attest.errors import AttestError
from registry.settings import Settings
from registry.state import Registry

log = logging.getLogger("registry.http")


class MetricsMiddleware:
    """Counts and times every request by route template (pure ASGI: cheap on the hot path)."""

    def __init__(self, app: ASGIApp, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            m = self.registry.metrics
            m.requests.labels(scope["method"], path, str(status)).inc()
            m.latency.labels(path).observe(time.perf_counter() - start)
            if status >= 400 and path == "/v1/attestations" and scope["method"] == "POST":
                m.refused.labels(str(status)).inc()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the registry app for ``settings`` (migrates, loads or creates the log key)."""
    settings = settings or Settings()
    registry = Registry(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        registry.close()

    app = FastAPI(
        title="model-attest registry",
        version="1",
        summary="Verified, append-only, transparent store of model attestations, with admission decisions.",
        lifespan=lifespan,
    )
    app.state.registry = registry

    @app.exception_handler(AttestError)
    async def attest_error(request: Request, exc: AttestError) -> JSONResponse:
        log.info(
            "refused",
            extra={"fields": {"path": request.url.path, "status": exc.http_status, "error": exc.message}},
        )
        return JSONResponse({"error": exc.message, "type": type(exc).__name__}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first: Any = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            {"error": f"{where}: {first.get('msg', 'invalid request')}", "type": "UsageError"}, 422
        )

    from registry.routers import admission, attestations, constitutions, models, namespaces, ops, tokens
    from registry.routers import log as log_router

    for module in (attestations, log_router, models, tokens, namespaces, admission, constitutions, ops):
        app.include_router(module.router)
    app.add_middleware(MetricsMiddleware, registry=registry)
    return app
