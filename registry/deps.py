"""FastAPI dependencies: the registry of this app, and the caller's token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from registry.auth import Principal, authenticate
from registry.publishing import PayloadTooLarge
from registry.state import Registry


async def get_registry(request: Request) -> Registry:
    """Async on purpose: a sync dependency costs a thread-pool hop on every request."""
    reg: Registry = request.app.state.registry
    return reg


RegistryDep = Annotated[Registry, Depends(get_registry)]


def require_token(reg: RegistryDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    with reg.db.read_session() as session:
        return authenticate(session, authorization)


def require_admin(principal: Annotated[Principal, Depends(require_token)]) -> Principal:
    principal.require_admin()
    return principal


async def reader(reg: RegistryDep, authorization: Annotated[str | None, Header()] = None) -> None:
    """Reads are public unless the server is configured to require a token for them."""
    if reg.settings.read_token_required:
        await run_in_threadpool(require_token, reg, authorization)


PrincipalDep = Annotated[Principal, Depends(require_token)]
AdminDep = Annotated[Principal, Depends(require_admin)]
ReaderDep = Depends(reader)


async def read_capped_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (never buffered past it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"bundle is {declared} bytes, the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"bundle exceeds the limit of {limit} bytes")
    return bytes(body)
