"""FastAPI dependencies: the registry of this app, and the caller's token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from registry.auth import Principal, authenticate
from registry.publishing import PayloadTooLarge
from registry.state import Registry
from registry.validation import parse_json


async def get_registry(request: Request) -> Registry:
    """Async on purpose: a sync dependency costs a thread-pool hop on every request."""
    reg: Registry = request.app.state.registry
    return reg


RegistryDep = Annotated[Registry, Depends(get_registry)]


# Declares the bearer scheme in OpenAPI (``components.securitySchemes.bearer``); the header itself is
# checked by ``authenticate``, which gives the registry's own 401 messages.
bearer = HTTPBearer(auto_error=False, scheme_name="bearer", description="A registry API token (mat_...).")


def require_token(
    reg: RegistryDep,
    authorization: Annotated[str | None, Header()] = None,
    _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)] = None,
) -> Principal:
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


async def read_capped_body(request: Request, limit: int, what: str = "body") -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` (never buffered past it).

    ``BodyLimitMiddleware`` already caps every body at ``max_body_bytes``; this is the tighter,
    per-endpoint cap (a bundle, a policy)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"{what} is {declared} bytes, the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"{what} exceeds the limit of {limit} bytes")
    return bytes(body)


def capped_json(limit_setting: str = "max_body_bytes", what: str = "body") -> Callable[..., Awaitable[Any]]:
    """A dependency factory: the JSON body, read with the cap named by ``limit_setting`` (a
    ``Settings`` field), refused with 413 past it and 400 if it is not JSON or nests deeper than
    ``MAX_JSON_DEPTH``. Use it instead of a body parameter where the body must be bounded tighter
    than the server-wide cap, or where its shape is checked by the endpoint itself::

        body: Annotated[Any, Depends(capped_json("max_policy_bytes", "policy"))]
    """

    async def dependency(request: Request, reg: RegistryDep) -> Any:
        limit = int(getattr(reg.settings, limit_setting))
        return parse_json(await read_capped_body(request, limit, what), what)

    return dependency


JsonBody = Annotated[Any, Depends(capped_json())]
