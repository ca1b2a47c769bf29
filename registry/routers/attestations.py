"""``/v1/attestations``: publish (verified before storing), query with proofs, fetch one entry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.api_models import EntryOut, PublishedOut, QueryPage, SigstoreBundle, declared_body, errors, ok
from registry.deps import PrincipalDep, ReaderDep, RegistryDep, read_capped_body
from registry.entries import Query as EntryQuery
from registry.entries import get_entry, render_entry, run_query
from registry.publishing import publish
from registry.timeparse import parse_time_param
from registry.validation import MAX_INT

router = APIRouter(prefix="/v1/attestations", tags=["attestations"])


@router.post(
    "",
    operation_id="publishAttestation",
    status_code=201,
    summary="Publish a Sigstore bundle (verified before it is stored)",
    responses=ok(PublishedOut, "Verified, authorised and appended.", 201)
    | ok(PublishedOut, "Already stored: this bundle, or the same statement from the same signer.")
    | errors(400, 401, 403, 413, 422, 429, 503, 507),
    openapi_extra=declared_body(SigstoreBundle, "A Sigstore bundle v0.3 (a *.sigstore.json file)."),
)
async def publish_bundle(
    request: Request, response: Response, reg: RegistryDep, principal: PrincipalDep
) -> Any:
    body = await read_capped_body(request, reg.settings.max_bundle_bytes)
    entry, created = await run_in_threadpool(publish, reg, principal, body)
    if not created:
        response.status_code = 200
    return entry


@router.get(
    "",
    operation_id="queryAttestations",
    dependencies=[ReaderDep],
    summary="Query entries; every result carries its inclusion proof",
    responses=ok(QueryPage, "A page of entries in log order.") | errors(400, 401, 422, 429, 503),
)
def query(
    reg: RegistryDep,
    subject_digest: Annotated[str | None, Query(alias="subjectDigest")] = None,
    name: str | None = None,
    predicate_type: Annotated[str | None, Query(alias="predicateType")] = None,
    signer: str | None = None,
    since: str | None = None,
    until: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_INT)] = 100,
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


@router.get(
    "/{log_index}",
    operation_id="getAttestation",
    dependencies=[ReaderDep],
    summary="One entry by log index, with bundle and proof",
    responses=ok(EntryOut, "The entry.") | errors(401, 404, 422, 429, 503),
)
def entry(reg: RegistryDep, log_index: Annotated[int, Path(ge=0, le=MAX_INT)]) -> Any:
    with reg.db.read_session() as session:
        row = get_entry(session, log_index=log_index)
        return render_entry(reg.log, session, row, reg.log.checkpoint(session))
