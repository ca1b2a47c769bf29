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
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from attest.errors import AttestError
from registry.api_models import complete_openapi
from registry.db import classify_db_error
from registry.ratelimit import BodyLimitMiddleware, RateLimitMiddleware
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
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        return JSONResponse(
            {"error": exc.message, "type": type(exc).__name__}, status_code=exc.http_status, headers=headers
        )

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        """Database failures get their status and reason (400, 409, 503, 507), never a bare 500."""
        err = classify_db_error(exc)
        registry.metrics.storage_errors.labels(str(err.http_status)).inc()
        log.error(
            "database error",
            extra={"fields": {"path": request.url.path, "status": err.http_status, "error": err.message}},
        )
        return JSONResponse({"error": err.message, "type": type(err).__name__}, status_code=err.http_status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        """A bug: logged with its traceback for the operator, one JSON line for the caller."""
        log.error(
            "internal error",
            exc_info=exc,
            extra={"fields": {"path": request.url.path, "error": f"{type(exc).__name__}: {exc}"[:300]}},
        )
        return JSONResponse({"error": "internal error", "type": "InternalError"}, status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Framework refusals (unparseable body, 404 route, 405) in the registry's one error shape."""
        return JSONResponse(
            {"error": str(exc.detail), "type": "HTTPError"}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first: Any = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse(
            {"error": f"{where}: {first.get('msg', 'invalid request')}", "type": "UsageError"}, 422
        )

    from registry.routers import admission, attestations, constitutions, models, namespaces, ops, tokens
    from registry.routers import log as log_router
    from registry.web import router as web_router

    for module in (attestations, log_router, models, tokens, namespaces, admission, constitutions, ops):
        app.include_router(module.router)
    app.include_router(web_router)  # the HTML pages (registry/web), left out of the OpenAPI document
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, completed once so generated clients can use it (``complete_openapi``)."""
        schema = app.openapi_schema
        if schema is None:
            schema = complete_openapi(build_openapi())
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    # outermost last: metrics see every answer (429 and 413 included), rate limits run before any
    # body is read, and the body cap before any endpoint can buffer one
    app.add_middleware(BodyLimitMiddleware, limit=max(settings.max_body_bytes, settings.max_bundle_bytes))
    app.add_middleware(RateLimitMiddleware, registry=registry)
    app.add_middleware(MetricsMiddleware, registry=registry)
    return app
