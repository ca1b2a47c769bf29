"""``/v1/admission``: plain JSON decisions, signed verdicts (VSAs) and Kubernetes AdmissionReview v1.

Bodies are read through ``read_capped_body`` (413 before a large body is buffered) and parsed here,
not by FastAPI, which would read the whole body before any dependency could refuse it. Malformed JSON
is a 400, a body of the wrong shape a 422, and neither reaches the decision code.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from attest.errors import AttestError, UsageError
from attest.keys import spki_pem
from attest.vsa import sign_vsa
from registry.admission import cached_decision, choose_policy, decide, review, verdict_name
from registry.api_models import (
    AdmissionReviewIn,
    AdmissionReviewOut,
    DecisionOut,
    EvaluateRequest,
    PolicyList,
    VerifierKeyOut,
    declared_body,
    errors,
    ok,
)
from registry.deps import ReaderDep, RegistryDep, read_capped_body
from registry.state import Registry

VERIFIER_ID = "https://model-attest.dev/registry/admission/v1"

router = APIRouter(prefix="/v1/admission", tags=["admission"], dependencies=[ReaderDep])


def _json_body(raw: bytes) -> Any:
    """Parse a request body: malformed, non-UTF-8 or absurdly nested JSON is a 400."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise UsageError("request body is not valid JSON") from None


def _validation_message(exc: ValidationError) -> str:
    first: Any = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid request')}"


class InvalidRequest(AttestError):
    """A well-formed JSON body of the wrong shape (422, like FastAPI's own validation errors)."""

    http_status = 422
    exit_code = 2


@router.post(
    "/evaluate",
    operation_id="evaluateAdmission",
    summary="Decide whether a model digest is admissible under a policy",
    openapi_extra=declared_body(EvaluateRequest),
    responses=ok(DecisionOut, "The decision (allowed or denied), with its evidence and their proofs.")
    | errors(400, 401, 409, 413, 422, 429, 503),
)
async def evaluate(reg: RegistryDep, request: Request) -> Response:
    raw = await read_capped_body(request, reg.settings.admission_max_body_bytes)
    try:
        body = EvaluateRequest.model_validate(_json_body(raw))
    except ValidationError as exc:
        raise InvalidRequest(_validation_message(exc)) from None
    choice = choose_policy(reg, body.policy, body.policy_name)
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
    name = verdict_name(decided.decision, choice, body.model_name)
    out = json.loads(decided.response_body(cached))
    base = reg.settings.public_url or str(request.base_url)
    out["verificationSummary"] = _sign(reg, decided.decision, name, choice.label, base)
    return Response(json.dumps(out), media_type="application/json")


def _sign(reg: Registry, decision: dict[str, Any], name: str, policy_name: str, base: str) -> dict[str, Any]:
    """The registry's signed verdict: each input attestation located by its log entry's URL."""
    base = base.rstrip("/")
    locators = {
        e["bundleDigest"]: f"{base}/v1/attestations/{e['logIndex']}"
        for e in decision.get("logEntries", [])
        if "bundleDigest" in e and "logIndex" in e
    }
    return sign_vsa(
        reg.verifier, decision, name, policy_uri=policy_name, input_uris=locators, verifier_id=VERIFIER_ID
    )


@router.get(
    "/policies",
    operation_id="listPolicies",
    summary="The named policies this registry signs verdicts for",
    responses=ok(PolicyList, "The server's policies.") | errors(401, 429),
)
def policies(reg: RegistryDep) -> Any:
    return {
        "policies": [
            {"name": sp.name, "uri": sp.name, "digest": {"sha256": sp.policy.digest.removeprefix("sha256:")}}
            for sp in reg.policies.values()
        ]
    }


@router.get(
    "/verifier-key",
    operation_id="getVerifierKey",
    summary="The public key that signs this registry's verification summaries",
    responses=ok(VerifierKeyOut, "The key.") | errors(401, 429),
)
def verifier_key(reg: RegistryDep) -> Any:
    return {"publicKey": spki_pem(reg.verifier.public_key).decode(), "fingerprint": reg.verifier.fingerprint}


_REVIEW_DOC: dict[str, Any] = {
    "openapi_extra": declared_body(AdmissionReviewIn, "An AdmissionReview v1 from kube-apiserver."),
    "responses": ok(
        AdmissionReviewOut,
        "The review: a policy denial is response.allowed false with a status, never an HTTP error.",
    )
    | errors(400, 401, 413, 422, 429, 503),
}


@router.post(
    "/review",
    operation_id="reviewAdmission",
    summary="Kubernetes AdmissionReview v1 (validating webhook)",
    **_REVIEW_DOC,
)
async def admission_review(
    reg: RegistryDep,
    request: Request,
    policy: str | None = Query(None, max_length=63, description="server policy name; default: 'default'"),
) -> Any:
    raw = await read_capped_body(request, reg.settings.admission_max_body_bytes)
    body = _json_body(raw)
    return await run_in_threadpool(review, reg, body, policy)


@router.post(
    "/review/{policy_name}",
    operation_id="reviewAdmissionUnderPolicy",
    summary="Kubernetes AdmissionReview v1 under a named server policy (webhook clientConfig path)",
    **_REVIEW_DOC,
)
async def admission_review_named(
    reg: RegistryDep, request: Request, policy_name: Annotated[str, Path(max_length=63)]
) -> Any:
    raw = await read_capped_body(request, reg.settings.admission_max_body_bytes)
    body = _json_body(raw)
    return await run_in_threadpool(review, reg, body, policy_name)
