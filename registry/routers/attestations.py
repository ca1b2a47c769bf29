"""``/v1/attestations``: publish (verified before storing), query with proofs, fetch one entry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.deps import PrincipalDep, ReaderDep, RegistryDep
from registry.entries import Query as EntryQuery
from registry.entries import get_entry, render_entry, run_query
from registry.publishing import PayloadTooLarge, publish
from registry.timeparse import parse_time_param

router = APIRouter(prefix="/v1/attestations", tags=["attestations"])


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"bundle is {declared} bytes, the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"bundle exceeds the limit of {limit} bytes")
    return bytes(body)


@router.post("", status_code=201, summary="Publish a Sigstore bundle (verified before it is stored)")
async def publish_bundle(
    request: Request, response: Response, reg: RegistryDep, principal: PrincipalDep
) -> Any:
    body = await _read_capped(request, reg.settings.max_bundle_bytes)
    entry, created = await run_in_threadpool(publish, reg, principal, body)
    if not created:
        response.status_code = 200
    return entry


@router.get("", dependencies=[ReaderDep], summary="Query entries; every result carries its inclusion proof")
def query(
    reg: RegistryDep,
    subject_digest: Annotated[str | None, Query(alias="subjectDigest")] = None,
    name: str | None = None,
    predicate_type: Annotated[str | None, Query(alias="predicateType")] = None,
    signer: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
    include_bundle: Annotated[bool, Query(alias="includeBundle")] = False,
) -> Any:
    q = EntryQuery(
        subject_digest,
        name,
        predicate_type,
        signer,
        parse_time_param(since, "since"),
        parse_time_param(until, "until"),
        cursor,
        limit,
        include_bundle,
    )
    with reg.db.read_session() as session:
        # plain JSON types throughout: skip FastAPI's per-field encoder (a large share of the cost)
        return JSONResponse(run_query(reg.log, session, q, reg.settings.max_query_limit))


@router.get("/{log_index}", dependencies=[ReaderDep], summary="One entry by log index, with bundle and proof")
def entry(reg: RegistryDep, log_index: int) -> Any:
    with reg.db.read_session() as session:
        row = get_entry(session, log_index=log_index)
        return render_entry(reg.log, session, row, reg.log.checkpoint(session))
