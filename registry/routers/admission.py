"""``/v1/admission``: plain JSON decisions and Kubernetes AdmissionReview v1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from registry.admission import choose_policy, decide, review
from registry.deps import ReaderDep, RegistryDep

router = APIRouter(prefix="/v1/admission", tags=["admission"], dependencies=[ReaderDep])


class EvaluateRequest(BaseModel):
    model_digest: str = Field(alias="modelDigest")
    policy: dict[str, Any] | None = None  # the policy document (YAML as JSON); default: the server's


@router.post("/evaluate", summary="Decide whether a model digest is admissible under a policy")
def evaluate(reg: RegistryDep, body: EvaluateRequest) -> Any:
    decision, cached = decide(reg, body.model_digest, choose_policy(reg, body.policy))
    reg.metrics.admission.labels(str(decision["allowed"]).lower(), str(cached).lower()).inc()
    return decision | {"cached": cached}


@router.post("/review", summary="Kubernetes AdmissionReview v1 (validating webhook)")
def admission_review(reg: RegistryDep, body: dict[str, Any]) -> Any:
    return review(reg, body)
