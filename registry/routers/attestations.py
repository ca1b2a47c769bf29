"""``/v1/attestations``: publish (verified before storing), query with proofs, fetch one entry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.deps import PrincipalDep, ReaderDep, RegistryDep, read_capped_body
from registry.entries import Query as EntryQuery
from registry.entries import get_entry, render_entry, run_query
from registry.publishing import publish
from registry.timeparse import parse_time_param

router = APIRouter(prefix="/v1/attestations", tags=["attestations"])


@router.post("", status_code=201, summary="Publish a Sigstore bundle (verified before it is stored)")
async def publish_bundle(
    request: Request, response: Response, reg: RegistryDep, principal: PrincipalDep
) -> Any:
    body = await read_capped_body(request, reg.settings.max_bundle_bytes)
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
