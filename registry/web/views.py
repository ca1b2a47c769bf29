"""What the web pages show, assembled from the same reads the JSON API makes.

This module only reads and shapes data; ``pages.py`` does HTTP and templates. Models, entries,
proofs and checkpoints come from ``registry.entries`` and ``registry.log``, so a page can never show
something the JSON API would not serve. Predicates are taken from the statements the registry
verified before storing them; a page presents them, it does not re-decide trust (a consumer's policy
does, with ``attest verify``).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, func, select

from attest import predicates
from attest._internal import merkle
from attest._internal.log_leaf import rfc3339
from attest.bundle import parse_bundle
from attest.errors import AttestError, UsageError
from attest.predicates import (
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    MODEL_MANIFEST_V1,
    REVOCATION_V1,
)
from registry.entries import get_entry, model_page, normalise_digest, render_entry, subjects_of
from registry.log import NotFoundError, TransparencyLog
from registry.models import Entry, EntrySubject
from registry.web.plot import SignalPlot, signal_plot

MAX_QUERY_CHARS = 512  # search text longer than any model name or digest is refused, not truncated
SEARCH_LIMIT = 50
RECENT_MODELS = 20
RECENT_SCAN_ROWS = 500  # newest subject rows walked to find the recent models (index scan, no GROUP BY)
RECENT_ENTRIES = 20
MAX_MODEL_ENTRIES = 1000  # attestations shown on one model page; more are summarised, JSON has all


def model_path(name: str) -> str:
    """The page URL of a model name ``org/rest``; every part percent-encoded (names are untrusted)."""
    ns, _, rest = name.partition("/")
    return f"/models/{quote(ns, safe='')}/{quote(rest, safe='')}"


def model_json_path(name: str) -> str:
    ns, _, rest = name.partition("/")
    return f"/v1/models/{quote(ns, safe='')}/{quote(rest, safe='')}"


def signer_text(entry: Entry) -> str:
    """The verified signer as stored: ``key sha256:...`` or ``SAN (issuer ...)``."""
    if entry.signer_issuer:
        return f"{entry.signer} (issuer {entry.signer_issuer})"
    return f"key {entry.signer}"


def predicate_title(uri: str) -> str:
    try:
        return predicates.get(uri).title
    except AttestError:
        return uri


def statement_of(entry: Entry) -> dict[str, Any] | None:
    """The in-toto statement inside a stored bundle (verified at publish time), or None if unreadable."""
    try:
        doc = json.loads(parse_bundle(entry.bundle).payload)
    except (AttestError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def safe_link(uri: Any) -> str | None:
    """Only http(s) URIs from predicates become links; anything else (``javascript:``...) stays text."""
    if isinstance(uri, str) and uri.lower().startswith(("https://", "http://")):
        return uri
    return None


# -- search and the front page ---------------------------------------------------------------------


@dataclass
class SearchResult:
    query: str
    kind: str  # "digest" or "name"
    names: list[str]
    json_url: str


def search(session: Session, query: str) -> SearchResult:
    """Models whose name contains ``query`` (case-insensitive), or that have a version with that digest."""
    q = query.strip()
    if len(q) > MAX_QUERY_CHARS:
        raise UsageError(f"search text is longer than {MAX_QUERY_CHARS} characters")
    if not q:
        raise UsageError("search text is empty")
    try:
        digest = normalise_digest(q)
    except UsageError:
        digest = None
    if digest is not None:
        rows = session.exec(
            select(EntrySubject.name).where(EntrySubject.digest == digest).distinct().limit(SEARCH_LIMIT)
        ).all()
        return SearchResult(q, "digest", sorted(set(rows)), f"/v1/attestations?subjectDigest={quote(digest)}")
    pattern = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = session.exec(
        select(EntrySubject.name)
        .where(func.lower(EntrySubject.name).like(pattern, escape="\\"))
        .distinct()
        .order_by(col(EntrySubject.name))
        .limit(SEARCH_LIMIT)
    ).all()
    return SearchResult(q, "name", list(rows), f"/v1/attestations?name={quote(q, safe='')}")


def recent_models(session: Session) -> list[str]:
    """The most recently attested model names, newest first (walks the newest subject rows only)."""
    rows = session.exec(
        select(EntrySubject.name).order_by(col(EntrySubject.log_index).desc()).limit(RECENT_SCAN_ROWS)
    ).all()
    return list(dict.fromkeys(rows))[:RECENT_MODELS]


# -- the model page --------------------------------------------------------------------------------


@dataclass
class Attestation:
    log_index: int
    predicate_type: str
    title: str
    signer: str
    time: str
    predicate: dict[str, Any]


@dataclass
class Version:
    digest: str
    first_seen: str
    label: str | None = None
    manifest: dict[str, Any] | None = None
    groups: list[tuple[str, str, list[Attestation]]] = field(default_factory=list)
    scan: Attestation | None = None
    scan_plot: SignalPlot | None = None
    scans: int = 0
    compliance: Attestation | None = None
    compliance_tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    assessments: int = 0
    bindings: list[Attestation] = field(default_factory=list)
    revocations: list[Attestation] = field(default_factory=list)
    pull_command: str = ""
    verify_command: str = ""

    @property
    def anchor(self) -> str:
        return "v-" + self.digest.removeprefix("sha256:")[:16]


@dataclass
class ModelView:
    name: str
    versions: list[Version]
    truncated: int
    json_url: str

    @property
    def revoked(self) -> list[Version]:
        return [v for v in self.versions if v.revocations]


def _commands(name: str, ref: str, registry_url: str) -> tuple[str, str]:
    """Copyable commands; every untrusted part is shell-quoted so pasting one runs nothing else."""
    folder = "./" + (re.sub(r"[^A-Za-z0-9._-]+", "-", name.partition("/")[2]).strip("-.") or "model")
    pull = shlex.join(
        [
            "attest",
            "pull",
            f"{name}@{ref}",
            "--registry",
            registry_url,
            "--policy",
            "policy.yaml",
            "--from",
            f"hf://{name}",
            "--to",
            folder,
        ]
    )
    verify = shlex.join(["attest", "verify", folder, "--registry", registry_url, "--policy", "policy.yaml"])
    return pull, verify


STATUS_ORDER = ("not-satisfied", "insufficient-evidence", "satisfied", "not-applicable")
TYPE_ORDER = (
    MODEL_MANIFEST_V1,
    BACKDOOR_SCAN_V1,
    COMPLIANCE_ASSESSMENT_V1,
    CONSTITUTION_BINDING_V1,
    REVOCATION_V1,
)


def _compliance_tables(predicate: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Findings per jurisdiction, what needs attention first (not satisfied, then missing evidence)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for finding in _list(predicate.get("findings")):
        if isinstance(finding, dict):
            by.setdefault(str(finding.get("jurisdiction", "?")), []).append(finding)

    def rank(f: dict[str, Any]) -> int:
        status = f.get("status")
        return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)

    return [(j, sorted(fs, key=rank)) for j, fs in sorted(by.items())]


def _type_rank(uri: str) -> tuple[int, str]:
    return (TYPE_ORDER.index(uri) if uri in TYPE_ORDER else len(TYPE_ORDER), uri)


def model_view(session: Session, namespace: str, name: str, registry_url: str) -> ModelView:
    """Every version of ``namespace/name`` with its attestations, read as ``/v1/models`` reads them."""
    page = model_page(session, namespace, name)  # NotFoundError -> 404, as the JSON API answers
    indices = sorted({a["logIndex"] for v in page["versions"] for a in v["attestations"]})
    truncated = max(0, len(indices) - MAX_MODEL_ENTRIES)
    shown = set(indices[-MAX_MODEL_ENTRIES:])
    rows = {
        e.log_index: e
        for e in session.exec(select(Entry).where(col(Entry.log_index).in_(sorted(shown)))).all()
    }
    statements = {i: statement_of(e) for i, e in rows.items()}
    versions: list[Version] = []
    for v in reversed(page["versions"]):  # newest version first
        version = Version(digest=v["digest"], first_seen=v["firstSeen"])
        grouped: dict[str, list[Attestation]] = {}
        for a in v["attestations"]:
            entry = rows.get(a["logIndex"])
            if entry is None:
                continue
            predicate = _dict(_dict(statements.get(entry.log_index)).get("predicate"))
            att = Attestation(
                entry.log_index,
                entry.predicate_type,
                predicate_title(entry.predicate_type),
                signer_text(entry),
                a["integratedTime"],
                predicate,
            )
            grouped.setdefault(entry.predicate_type, []).append(att)
            if att.predicate_type == MODEL_MANIFEST_V1 and version.manifest is None:
                version.manifest = predicate
                label = _dict(predicate.get("model")).get("version")
                version.label = str(label) if label is not None else None
            elif att.predicate_type == BACKDOOR_SCAN_V1:
                version.scan, version.scans = att, version.scans + 1  # the latest scan is shown in full
            elif att.predicate_type == COMPLIANCE_ASSESSMENT_V1:
                version.compliance, version.assessments = att, version.assessments + 1
            elif att.predicate_type == CONSTITUTION_BINDING_V1:
                version.bindings.append(att)
            elif att.predicate_type == REVOCATION_V1 and str(predicate.get("revokedDigest", "")).lower() == (
                version.digest
            ):
                version.revocations.append(att)
        version.groups = [(predicate_title(t), t, grouped[t]) for t in sorted(grouped, key=_type_rank)]
        if version.scan is not None:
            version.scan_plot = signal_plot(_list(version.scan.predicate.get("dynamicSignals")))
        if version.compliance is not None:
            version.compliance_tables = _compliance_tables(version.compliance.predicate)
        versions.append(version)
    labels = [v.label for v in versions]
    for version in versions:  # pull by version label when it names one version, else by digest
        ref = version.label if version.label and labels.count(version.label) == 1 else version.digest
        version.pull_command, version.verify_command = _commands(page["name"], ref, registry_url)
    return ModelView(page["name"], versions, truncated, model_json_path(page["name"]))


# -- the log and its entries -----------------------------------------------------------------------


@dataclass
class LogView:
    origin: str
    vkey: str
    size: int
    root_hash: str
    note: str
    first_size: int | None
    first_root: str | None
    consistency: list[str]
    consistent: bool | None
    consistency_error: str | None
    recent: list[dict[str, Any]]
    json_url: str
    proof_url: str | None


def parse_size(text: str | None, what: str) -> int | None:
    """A tree size or log index from a query or path: a plain non-negative integer, else UsageError."""
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise UsageError(f"{what} must be a non-negative integer, not {text[:40]!r}")
    return int(text)


def log_view(session: Session, log: TransparencyLog, first: int | None) -> LogView:
    """The latest checkpoint, a consistency proof from an earlier size (checked here), recent entries."""
    latest = log.checkpoint(session)
    if first is None:
        first = max(0, latest.size - 1)
    if first > latest.size:
        raise UsageError(f"tree size {first} is larger than the log ({latest.size} entries)")
    earlier = log.checkpoint(session, first)
    proof = log.consistency_proof(session, first, latest.size)
    consistent, error = True, None
    try:
        merkle.verify_consistency(first, latest.size, proof, earlier.root_hash, latest.root_hash)
    except AttestError as exc:
        consistent, error = False, exc.message
    rows = list(session.exec(select(Entry).order_by(col(Entry.log_index).desc()).limit(RECENT_ENTRIES)).all())
    subjects = subjects_of(session, [r.log_index for r in rows])
    recent = [
        {
            "logIndex": r.log_index,
            "title": predicate_title(r.predicate_type),
            "time": rfc3339(r.integrated_time),
            "signer": signer_text(r),
            "names": sorted({s["name"] for s in subjects.get(r.log_index, [])}),
        }
        for r in rows
    ]
    return LogView(
        origin=log.origin,
        vkey=log.verifier.vkey(),
        size=latest.size,
        root_hash=latest.root_hash.hex(),
        note=latest.note,
        first_size=first,
        first_root=earlier.root_hash.hex(),
        consistency=[h.hex() for h in proof],
        consistent=consistent,
        consistency_error=error,
        recent=recent,
        json_url="/v1/log/checkpoint",
        proof_url=f"/v1/log/proof/consistency?firstSize={first}&lastSize={latest.size}",
    )


@dataclass
class EntryView:
    doc: dict[str, Any]  # the entry exactly as /v1/attestations/{i} serves it
    title: str
    signer: str
    statement_json: str
    subjects: list[tuple[str, str]]  # (name, "sha256:<hex>") as the log leaf records them
    json_url: str
    proof_url: str


def entry_view(session: Session, log: TransparencyLog, log_index: int) -> EntryView:
    """One entry with its inclusion proof against the latest checkpoint, and its statement as JSON."""
    row = get_entry(session, log_index=log_index)
    checkpoint = log.checkpoint(session)
    if row.log_index >= checkpoint.size:  # stored but not yet covered by a checkpoint
        raise NotFoundError("no such entry")
    doc = render_entry(log, session, row, checkpoint, include_bundle=False)
    statement = statement_of(row)
    text = (
        json.dumps(statement, indent=2, ensure_ascii=False)
        if statement is not None
        else "(the stored bundle's payload could not be decoded)"
    )
    subjects = []
    for subject in _list(doc.get("subjects")):
        if isinstance(subject, dict):
            digests = _dict(subject.get("digest"))
            shown = ", ".join(f"{alg}:{value}" for alg, value in sorted(digests.items()))
            subjects.append((str(subject.get("name", "")), shown))
    return EntryView(
        doc,
        predicate_title(row.predicate_type),
        signer_text(row),
        text,
        subjects,
        f"/v1/attestations/{row.log_index}",
        f"/v1/log/proof/inclusion?logIndex={row.log_index}&treeSize={checkpoint.size}",
    )
