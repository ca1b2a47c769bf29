"""FastAPI dependencies: the registry of this app, and the caller's token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from registry.auth import Principal, authenticate
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
