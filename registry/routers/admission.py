"""``/v1/admission``: plain JSON decisions and Kubernetes AdmissionReview v1."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from attest.keys import spki_pem
from attest.vsa import sign_vsa
from registry.admission import cached_decision, choose_policy, decide, review
from registry.deps import ReaderDep, RegistryDep

VERIFIER_ID = "https://model-attest.dev/registry/admission/v1"

router = APIRouter(prefix="/v1/admission", tags=["admission"], dependencies=[ReaderDep])


class EvaluateRequest(BaseModel):
    model_digest: str = Field(alias="modelDigest")
    policy: dict[str, Any] | None = None  # the policy document (YAML as JSON); default: the server's
    emit_vsa: bool = Field(False, alias="emitVsa")  # also return a signed SLSA verification summary
    model_name: str | None = Field(None, alias="modelName")  # subject name of that summary


@router.post("/evaluate", summary="Decide whether a model digest is admissible under a policy")
async def evaluate(reg: RegistryDep, body: EvaluateRequest) -> Response:
    choice = choose_policy(reg, body.policy)
    size = reg.log_size_hint()
    if size is None:  # stale: re-read off the event loop
        size = await run_in_threadpool(reg.refresh_log_size)
    hit = cached_decision(reg, body.model_digest, choice, size)  # the hot path: no thread hop, no query
    if hit is not None:
        decided, cached = hit, True
    else:
        decided, cached = await run_in_threadpool(decide, reg, body.model_digest, choice)
    reg.metrics.admission.labels(str(decided.decision["allowed"]).lower(), str(cached).lower()).inc()
    if not body.emit_vsa:
        return Response(decided.response_body(cached), media_type="application/json")
    out = json.loads(decided.response_body(cached))
    name = body.model_name or decided.decision["modelDigest"]
    out["verificationSummary"] = sign_vsa(reg.verifier, decided.decision, name, verifier_id=VERIFIER_ID)
    return Response(json.dumps(out), media_type="application/json")


@router.get("/verifier-key", summary="The public key that signs this registry's verification summaries")
def verifier_key(reg: RegistryDep) -> Any:
    return {"publicKey": spki_pem(reg.verifier.public_key).decode(), "fingerprint": reg.verifier.fingerprint}


@router.post("/review", summary="Kubernetes AdmissionReview v1 (validating webhook)")
def admission_review(reg: RegistryDep, body: dict[str, Any]) -> Any:
    return review(reg, body)
