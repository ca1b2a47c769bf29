"""Pydantic models of the registry API's bodies and answers, for the OpenAPI document.

Why separate from the routers: the answers are built as plain JSON by ``registry.entries`` (the hot
query path skips FastAPI's encoder), so these models *document* them (``responses=``) rather than
re-validate every answer; ``tests/test_registry_api.py`` and ``tests/test_openapi_client.py`` check
real answers against them, the latter through a client generated from the document, so the two
cannot drift apart.

Bodies that must be capped before they are read (bundles, admission requests) are read raw by their
endpoints (``registry.deps.read_capped_body``); a FastAPI body parameter would buffer them first.
Their models are declared with ``declared_body(Model)`` instead, and ``complete_openapi`` puts them
in the document's components, so a generated client still gets a typed request body.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from registry.validation import MAX_SIGNER


class ErrorBody(BaseModel):
    """Every refusal: one line for a human, the error class for a program."""

    error: str = Field(description="One-line reason.")
    type: str = Field(description="Error class, e.g. UsageError, VerificationError, RateLimited.")


ERROR_REF = "#/components/schemas/ErrorBody"

_ERRORS: dict[int, str] = {
    400: "Malformed input: bad JSON, digest, name, integer, time or cursor.",
    401: "No bearer token, or an unknown, revoked or expired one.",
    403: "The token or signer may not do this (namespace, role, binding, revocation authority).",
    404: "No such entry, checkpoint, model, token or binding.",
    409: "A conflicting write, or a verdict the registry will not sign.",
    413: "The body is over the limit (refused before it is read whole).",
    422: "Well-formed but unacceptable: the bundle does not verify, or a field is invalid.",
    429: "A rate limit or namespace quota; see the Retry-After header (seconds).",
    503: "The log failed its integrity check, or the database is unavailable.",
    507: "The database's storage is full.",
}


_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these error statuses, all with the ``ErrorBody`` shape."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        # a $ref, not ``model``: FastAPI would file a model under the route's own media type, and
        # errors are JSON even where the answer is text (metrics, constitution texts)
        out[code] = {
            "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
            "description": _ERRORS[code],
        }
        if code == 429:
            out[code]["headers"] = _RETRY_AFTER
    return out


def ok(model: type[BaseModel], description: str, code: int = 200) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": model, "description": description}}


# Models referenced by $ref only (raw-read request bodies, errors); ``complete_openapi`` adds them.
_REF_MODELS: list[type[BaseModel]] = [ErrorBody]


def declared_body(model: type[BaseModel], description: str = "") -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``model`` that the endpoint reads itself."""
    if model not in _REF_MODELS:
        _REF_MODELS.append(model)
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}
    request: dict[str, Any] = {"required": True, "content": content}
    if description:
        request["description"] = description
    return {"requestBody": request}


def ok_text(description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 whose body is plain text (metrics, constitution texts)."""
    return {200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": description}}


# -- log --------------------------------------------------------------------------------------------------


class CheckpointOut(BaseModel):
    origin: str
    tree_size: int = Field(alias="treeSize")
    root_hash: str = Field(alias="rootHash", description="Hex of the 32-byte RFC 6962 root.")
    checkpoint: str = Field(description="The C2SP signed note.")


class LogKeyOut(BaseModel):
    origin: str
    vkey: str = Field(description="C2SP verifier key: name+keyid+base64(type || Ed25519 key).")


class InclusionOut(BaseModel):
    log_index: int = Field(alias="logIndex")
    tree_size: int = Field(alias="treeSize")
    leaf_hash: str = Field(alias="leafHash")
    hashes: list[str]
    checkpoint: str


class ConsistencyOut(BaseModel):
    first_size: int = Field(alias="firstSize")
    last_size: int = Field(alias="lastSize")
    hashes: list[str]
    checkpoint: str


# -- attestations -----------------------------------------------------------------------------------------


class DsseSignature(BaseModel):
    model_config = ConfigDict(extra="allow")

    sig: str = Field(description="Base64 signature over the DSSE PAE of payloadType and payload.")
    keyid: str | None = None


class DsseEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    payload: str = Field(description="Base64 of the exact in-toto Statement bytes that were signed.")
    payload_type: str = Field(alias="payloadType", examples=["application/vnd.in-toto+json"])
    signatures: list[DsseSignature]


class SigstoreBundle(BaseModel):
    """A Sigstore bundle v0.3 (the ``*.sigstore.json`` file) holding a DSSE envelope.

    Only its shape is declared here; the registry verifies signature, trust and predicate itself.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    media_type: str = Field(alias="mediaType", examples=["application/vnd.dev.sigstore.bundle.v0.3+json"])
    verification_material: dict[str, Any] = Field(
        alias="verificationMaterial", description="publicKey hint, certificate, tlog entries, timestamps."
    )
    dsse_envelope: DsseEnvelope = Field(alias="dsseEnvelope")


class SignerOut(BaseModel):
    """The verified signer: a key (``kind`` key) or a Sigstore identity (``kind`` sigstore)."""

    kind: str = Field(description="key or sigstore")
    key_fingerprint: str | None = Field(None, alias="keyFingerprint", description="sha256:<hex> of the key")
    identity: str | None = Field(None, description="Certificate SAN (Sigstore)")
    issuer: str | None = Field(None, description="OIDC issuer (Sigstore)")


class Subject(BaseModel):
    name: str
    digest: str | dict[str, str] = Field(
        description="In query pages: the indexed sha256:<hex>. In a single entry: the statement's "
        'in-toto DigestSet, e.g. {"sha256": "<hex>"}.'
    )


class EntryProof(BaseModel):
    log_index: int = Field(alias="logIndex")
    tree_size: int = Field(alias="treeSize")
    root_hash: str = Field(alias="rootHash")
    hashes: list[str]
    checkpoint: str


class EntryOut(BaseModel):
    """One log entry; ``bundle`` only when asked for (``includeBundle``, or a single entry)."""

    model_config = ConfigDict(extra="allow")

    id: str
    log_index: int = Field(alias="logIndex")
    integrated_time: str = Field(alias="integratedTime")
    predicate_type: str = Field(alias="predicateType")
    subjects: list[Subject]
    signer: SignerOut
    namespace: str
    bundle_digest: str = Field(alias="bundleDigest")
    envelope_digest: str = Field(alias="envelopeDigest")
    envelope_size: int = Field(alias="envelopeSize")
    leaf: str = Field(
        description="The canonical JSON leaf record; its SHA-256(0x00 || leaf) is the leaf hash."
    )
    inclusion_proof: EntryProof = Field(alias="inclusionProof")
    bundle: SigstoreBundle | None = None


class PublishedOut(EntryOut):
    checkpoint: str


class QueryPage(BaseModel):
    entries: list[EntryOut]
    checkpoint: str
    tree_size: int = Field(alias="treeSize")
    next_cursor: str | None = Field(alias="nextCursor")


class ModelAttestation(BaseModel):
    log_index: int = Field(alias="logIndex")
    predicate_type: str = Field(alias="predicateType")
    integrated_time: str = Field(alias="integratedTime")
    signer: str


class ModelVersion(BaseModel):
    digest: str
    first_seen: str = Field(alias="firstSeen")
    attestations: list[ModelAttestation]


class ModelPage(BaseModel):
    name: str
    versions: list[ModelVersion]


# -- tokens and namespaces --------------------------------------------------------------------------------


class TokenRequest(BaseModel):
    role: str = Field("publisher", max_length=16, description="publisher or admin")
    namespaces: list[str] = Field(default_factory=list, max_length=256)
    description: str = Field("", max_length=255)
    expires: str | None = Field(
        None, max_length=64, description="A duration (30d, 12h, 90m, 8w) or an ISO date/time; none: never."
    )


class TokenOut(BaseModel):
    id: int
    role: str
    namespaces: list[str]
    description: str
    created_at: str | None = Field(alias="createdAt")
    revoked_at: str | None = Field(alias="revokedAt")
    expires_at: str | None = Field(alias="expiresAt")


class TokenCreated(TokenOut):
    token: str = Field(description="The secret, shown once; only its SHA-256 is stored.")


class TokenList(BaseModel):
    tokens: list[TokenOut]


class Binding(BaseModel):
    signer: str = Field(max_length=MAX_SIGNER, description="Key fingerprint sha256:<hex>, or a Sigstore SAN.")
    issuer: str = Field("", max_length=MAX_SIGNER, description="OIDC issuer, for a Sigstore identity.")


class BindingOut(BaseModel):
    namespace: str
    signer: str
    issuer: str | None


class SignerList(BaseModel):
    namespace: str
    signers: list[BindingOut]


class Removed(BaseModel):
    removed: bool


# -- constitutions and operations -------------------------------------------------------------------------


class ConstitutionStored(BaseModel):
    digest: str
    section_root: str = Field(alias="sectionRoot")
    section_count: int = Field(alias="sectionCount")


class Health(BaseModel):
    status: str
    origin: str
    error: str | None = None


# -- admission --------------------------------------------------------------------------------------------


class EvaluateRequest(BaseModel):
    """A decision request: a model digest and a policy (a server policy by name, or a document)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model_digest: str = Field(alias="modelDigest", max_length=80, description="sha256:<64 lowercase hex>")
    policy: dict[str, Any] | None = Field(
        None, description="a policy document (YAML as JSON): evaluated, never signed"
    )
    policy_name: str | None = Field(
        None, alias="policyName", max_length=63, description="a server policy; default: 'default'"
    )
    emit_vsa: bool = Field(False, alias="emitVsa", description="also return a signed SLSA VSA")
    model_name: str | None = Field(
        None, alias="modelName", max_length=512, description="subject name of that VSA"
    )


class ReasonOut(BaseModel):
    code: str = Field(description="A stable reason code, e.g. MISSING_ATTESTATION, REVOKED, UNKNOWN_MODEL.")
    message: str


class EvidenceOut(BaseModel):
    """An attestation the decision used: it verified and its signer is trusted for its role."""

    predicate_type: str = Field(alias="predicateType")
    bundle_digest: str = Field(alias="bundleDigest")
    signer: SignerOut
    subjects: list[str] = Field(description="sha256 hex digests of the statement's subjects")


class RejectedOut(BaseModel):
    """A stored attestation set aside (did not verify, untrusted for its role, another model)."""

    bundle: str
    code: str
    message: str


class AttestationCounts(BaseModel):
    stored: int = Field(description="Attestations stored about the digest.")
    untrusted_signer: int = Field(alias="untrustedSigner", description="Skipped unread: signer not trusted.")
    over_cap: int = Field(alias="overCap", description="Trusted but beyond the per-decision cap.")
    evidence: int
    rejected: int


class DecisionOut(BaseModel):
    """An admission decision: allowed or denied, why, on which log entries, proven against which checkpoint."""

    model_config = ConfigDict(extra="allow")

    allowed: bool
    decision: Literal["allowed", "denied"]
    model_digest: str = Field(alias="modelDigest")
    policy_digest: str = Field(alias="policyDigest", description="sha256 of the canonical policy.")
    reasons: list[ReasonOut]
    evidence: list[EvidenceOut]
    rejected: list[RejectedOut]
    warnings: list[str]
    attestations: AttestationCounts
    model_names: list[str] = Field(alias="modelNames", description="Names the evidence gives the digest.")
    revoked: bool
    log_entries: list[EntryOut] = Field(
        alias="logEntries", description="The evidence's entries, with proofs."
    )
    checkpoint: str = Field(description="The signed checkpoint those proofs lead to.")
    cached: bool = Field(description="Answered from the decision cache (same digest, policy and log size).")
    verification_summary: SigstoreBundle | None = Field(
        None,
        alias="verificationSummary",
        description="With emitVsa: the verdict as a signed SLSA verification summary (a bundle).",
    )


class PolicyInfo(BaseModel):
    name: str
    uri: str = Field(description="What a signed verdict records as policy.uri.")
    digest: dict[str, str] = Field(description='{"sha256": "<hex>"} of the canonical policy.')


class PolicyList(BaseModel):
    policies: list[PolicyInfo]


class VerifierKeyOut(BaseModel):
    public_key: str = Field(alias="publicKey", description="PEM SubjectPublicKeyInfo.")
    fingerprint: str = Field(description="sha256:<hex> of the DER key: what a policy names.")


class AdmissionRequest(BaseModel):
    """The parts of a Kubernetes ``AdmissionRequest`` the registry reads; the rest is passed over."""

    model_config = ConfigDict(extra="allow")

    uid: str = Field(min_length=1, max_length=256, description="Echoed in the response.")
    kind: dict[str, str] | None = Field(None, description="group, version, kind of the object.")
    operation: str | None = Field(None, description="CREATE, UPDATE, DELETE or CONNECT.")
    namespace: str | None = None
    name: str | None = None
    object: dict[str, Any] | None = Field(
        None,
        description="The object admitted: models are read from its model-attest.dev/models annotation "
        "(org/name@sha256:<hex>, comma or space separated), KServe storageUri and OCI image volumes.",
    )


class AdmissionReviewIn(BaseModel):
    """A Kubernetes ``AdmissionReview`` v1 request, as kube-apiserver sends it to a validating webhook."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class AdmissionStatus(BaseModel):
    code: int
    reason: str
    message: str = Field(description="Every denial, '; '-separated (at most 4000 characters).")


class AdmissionResponse(BaseModel):
    uid: str
    allowed: bool
    status: AdmissionStatus | None = Field(None, description="Only when denied.")
    warnings: list[str] | None = Field(None, description="Only for objects that reference models.")
    audit_annotations: dict[str, str] | None = Field(
        None,
        alias="auditAnnotations",
        description="Bare qualified-name keys (decision, policy, model-<digest prefix>); "
        "kube-apiserver prefixes them with the webhook name.",
    )


class AdmissionReviewOut(BaseModel):
    """The ``AdmissionReview`` v1 answer: allowed only if every referenced model is."""

    api_version: Literal["admission.k8s.io/v1"] = Field(alias="apiVersion")
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


# -- the document -----------------------------------------------------------------------------------------


def complete_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Finish FastAPI's document so it describes the wire and generated clients work from it.

    - Bodies read raw (``declared_body(Model)``) and ``ErrorBody`` (referenced by ``errors()``) get
      their schemas under ``components.schemas``.
    - FastAPI declares its own ``HTTPValidationError`` for 422, but the registry's handler answers
      every refusal, validation included, as ``ErrorBody``: each 422 says so, and an operation left
      with no parameter and no body (its only one was the Authorization header) declares none.
    - ``Authorization`` header parameters are dropped: OpenAPI says such a parameter "SHALL be
      ignored"; the ``bearer`` security scheme is the declaration (reads take the same token when the
      server requires one for reads).
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(m, "validation") for m in _REF_MODELS], ref_template="#/components/schemas/{model}"
    )
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            params = [
                p
                for p in operation.get("parameters", [])
                if p.get("in") != "header" or p.get("name", "").lower() != "authorization"
            ]
            if "parameters" in operation:
                if params:
                    operation["parameters"] = params
                else:
                    del operation["parameters"]
            responses = operation.get("responses", {})
            invalid = responses.get("422")
            if invalid is None:
                continue
            if invalid.get("description") == "Validation Error":  # FastAPI's, for its parameters
                if "parameters" not in operation and "requestBody" not in operation:
                    del responses["422"]  # it was there for the Authorization header alone
                    continue
                invalid["description"] = _ERRORS[422]
            invalid["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now referenced by nothing
        rest = {k: v for k, v in components.items() if k != name}
        if f'/{name}"' not in json.dumps([schema.get("paths", {}), rest]):
            components.pop(name, None)
    return schema
