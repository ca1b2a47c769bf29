"""``/v1/admission``: plain JSON decisions and Kubernetes AdmissionReview v1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from registry.admission import cached_decision, choose_policy, decide, review
from registry.deps import ReaderDep, RegistryDep

router = APIRouter(prefix="/v1/admission", tags=["admission"], dependencies=[ReaderDep])


class EvaluateRequest(BaseModel):
    model_digest: str = Field(alias="modelDigest")
    policy: dict[str, Any] | None = None  # the policy document (YAML as JSON); default: the server's


@router.post("/evaluate", summary="Decide whether a model digest is admissible under a policy")
async def evaluate(reg: RegistryDep, body: EvaluateRequest) -> Response:
    choice = choose_policy(reg, body.policy)
    size = reg.log_size_hint()
    if size is None:  # stale: re-read off the event loop
        size = await run_in_threadpool(reg.refresh_log_size)
    hit = cached_decision(reg, body.model_digest, choice, size)  # the hot path: no thread hop, no query
    if hit is not None:
        reg.metrics.admission.labels(str(hit.decision["allowed"]).lower(), "true").inc()
        return Response(hit.response_body(True), media_type="application/json")
    decided, cached = await run_in_threadpool(decide, reg, body.model_digest, choice)
    reg.metrics.admission.labels(str(decided.decision["allowed"]).lower(), str(cached).lower()).inc()
    return Response(decided.response_body(cached), media_type="application/json")


@router.post("/review", summary="Kubernetes AdmissionReview v1 (validating webhook)")
def admission_review(reg: RegistryDep, body: dict[str, Any]) -> Any:
    return review(reg, body)
