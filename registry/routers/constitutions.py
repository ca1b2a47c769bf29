"""``/v1/constitutions/{digest}``: canonical constitution texts, addressed by canonical sha256."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from attest.constitution import digest_text
from attest.errors import VerificationError
from registry.api_models import ConstitutionStored, errors, ok, ok_text
from registry.deps import PrincipalDep, ReaderDep, RegistryDep, read_capped_body
from registry.entries import normalise_digest
from registry.log import NotFoundError
from registry.models import Constitution

router = APIRouter(prefix="/v1/constitutions", tags=["constitutions"])


@router.post(
    "/{digest}",
    operation_id="storeConstitution",
    status_code=201,
    summary="Store a constitution text under its canonical digest",
    responses=ok(ConstitutionStored, "Stored.", 201)
    | ok(ConstitutionStored, "Already stored: the same canonical text.")
    | errors(400, 401, 413, 422, 429, 503, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            # raw bytes whatever the Content-Type (text/plain works too); declared as octet-stream,
            # which generated clients can send (openapi-python-client has no text/plain bodies)
            "description": "The constitution's text, UTF-8; stored in canonical form.",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def store(request: Request, response: Response, reg: RegistryDep, _p: PrincipalDep, digest: str) -> Any:
    want = normalise_digest(digest)
    raw = await read_capped_body(request, reg.settings.max_bundle_bytes)

    def _store() -> tuple[dict[str, Any], bool]:
        result = digest_text(raw)
        got = "sha256:" + result.canonical_sha256
        if got != want:
            raise VerificationError(f"canonical digest of the text is {got}, not {want}")
        with reg.db.write_session() as session:
            existing = session.get(Constitution, want)
            if existing is None:
                session.add(
                    Constitution(
                        digest=want,
                        text=result.canonical,
                        section_root=result.section_root,
                        created_at=datetime.now(UTC),
                    )
                )
        info = {"digest": want, "sectionRoot": result.section_root, "sectionCount": result.section_count}
        return info, existing is None

    info, created = await run_in_threadpool(_store)
    response.status_code = 201 if created else 200
    return info


@router.get(
    "/{digest}",
    operation_id="getConstitution",
    response_class=PlainTextResponse,
    dependencies=[ReaderDep],
    summary="The canonical text (text/plain; charset=utf-8)",
    responses=ok_text("The canonical text.") | errors(400, 401, 404, 429),
)
def fetch(reg: RegistryDep, digest: str) -> Response:
    with reg.db.read_session() as session:
        row = session.get(Constitution, normalise_digest(digest))
    if row is None:
        raise NotFoundError(f"no constitution {digest}")
    return Response(
        row.text.encode(),
        media_type="text/plain; charset=utf-8",
        headers={"X-Section-Root": row.section_root, "X-Canonical-Digest": row.digest},
    )
