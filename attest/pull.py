"""Verified download: decide with the registry first, then fetch, hash while fetching, and only then
move the model into place.

Order matters. The policy is evaluated over the registry's attestations before a single byte of the
model is requested, so a denied model is never on disk. Each file is streamed into a private staging
folder beside the destination while it is hashed; a file whose size or sha256 differs from the signed
manifest aborts the pull, and the staging folder is removed. Only a complete, matching set of files is
renamed into place (one atomic ``rename``), so an interrupted pull leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from attest.errors import AttestError, UsageError, VerificationError
from attest.manifest import Manifest, manifest_from_json
from attest.policy import Decision, Policy, evaluate
from attest.predicates import MODEL_MANIFEST_V1
from attest.verifying import Trust, VerifiedAttestation, verify_bundle

CHUNK = 1024 * 1024


class PullDenied(AttestError):
    """The policy denied the model, or a downloaded file did not match: nothing was written."""

    exit_code = 1
    http_status = 403

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class Source(Protocol):
    """Where the bytes come from. ``advertised`` is what the source claims before download."""

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]: ...

    def stream(self, path: str) -> Iterator[bytes]: ...


@dataclass
class LocalSource:
    root: Path

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def stream(self, path: str) -> Iterator[bytes]:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise VerificationError(f"{path}: resolves outside the source folder")
        try:
            with open(target, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise PullDenied(f"{path}: cannot read from source: {exc.strerror}") from None


@dataclass
class HttpSource:
    """A plain HTTP(S) mirror: ``GET <base>/<path>``."""

    base: str
    client: Any = field(default=None)

    def __post_init__(self) -> None:
        import httpx

        self.client = self.client or httpx.Client(follow_redirects=True, timeout=60.0)

    def url(self, path: str) -> str:
        return self.base.rstrip("/") + "/" + urllib.parse.quote(path)

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def stream(self, path: str) -> Iterator[bytes]:
        import httpx

        try:
            with self.client.stream("GET", self.url(path)) as resp:
                if resp.status_code != 200:
                    raise PullDenied(f"{path}: source answered HTTP {resp.status_code}")
                yield from resp.iter_bytes(CHUNK)
        except httpx.HTTPError as exc:
            raise PullDenied(f"{path}: download failed: {exc}") from None


@dataclass
class HubSource(HttpSource):
    """The Hugging Face Hub (or a compatible endpoint): ``hf://org/name[@revision]``.

    The hub advertises each LFS file's sha256 (its ``oid``) and size; those are compared with the
    signed manifest before any download, so a swapped file on the hub is caught without fetching it.
    """

    repo_id: str = ""
    revision: str = "main"
    endpoint: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from huggingface_hub import constants

        self.endpoint = (self.endpoint or constants.ENDPOINT).rstrip("/")

    def url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, path, revision=self.revision, endpoint=self.endpoint)

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            info = HfApi(endpoint=self.endpoint).model_info(
                self.repo_id, revision=self.revision, files_metadata=True
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise PullDenied(
                f"hub: cannot read {self.repo_id}@{self.revision}: {str(exc).splitlines()[0]}"
            ) from None
        out: dict[str, dict[str, Any]] = {}
        for sib in info.siblings or []:
            entry: dict[str, Any] = {"size": sib.size}
            if sib.lfs is not None:
                entry["sha256"] = sib.lfs.sha256
                entry["size"] = sib.lfs.size
            out[sib.rfilename] = entry
        return out


def open_source(spec: str, hub_endpoint: str | None = None) -> Source:
    """``hf://org/name[@rev]``, ``http(s)://mirror/base``, or a local folder."""
    if spec.startswith("hf://"):
        repo, _, rev = spec[len("hf://") :].partition("@")
        return HubSource(base="", repo_id=repo, revision=rev or "main", endpoint=hub_endpoint)
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec)
    root = Path(spec)
    if not root.is_dir():
        raise UsageError(f"{spec}: source is not a folder, http(s):// URL or hf:// repository")
    return LocalSource(root)


@dataclass
class PullResult:
    destination: Path
    model_digest: str
    decision: Decision
    files: int
    bytes: int


def select_manifest(attestations: list[VerifiedAttestation], name: str, version: str) -> VerifiedAttestation:
    """The manifest attestation for ``name@version`` (version may also be the model digest)."""
    matches = []
    for att in attestations:
        if att.predicate_type != MODEL_MANIFEST_V1:
            continue
        model = att.predicate.get("model", {})
        if model.get("name") != name:
            continue
        digests = {f"sha256:{d}" for d in att.statement.subject_sha256s()}
        if model.get("version") == version or version in digests:
            matches.append(att)
    subjects = {d for a in matches for d in a.statement.subject_sha256s()}
    if not matches:
        raise PullDenied(f"no verified model manifest for {name}@{version} in the registry")
    if len(subjects) > 1:
        raise PullDenied(
            f"{name}@{version} names {len(subjects)} different model digests; pin one with @sha256:<hex>"
        )
    return matches[0]


@dataclass
class PullPlan:
    """What the registry's verified attestations say, before any model byte is fetched."""

    decision: Decision
    manifest: Manifest
    bundles: list[bytes]  # the bundles about this model digest, kept beside the files


def decide(
    bundles: list[tuple[str, bytes]], name: str, version: str, policy: Policy, trust: Trust
) -> PullPlan:
    """Verify the registry's bundles and evaluate the policy; no model byte is involved yet."""
    verified: list[tuple[bytes, VerifiedAttestation]] = []
    for _, data in bundles:
        try:
            verified.append((data, verify_bundle(data, trust)))
        except AttestError:
            continue  # unverifiable evidence is simply not evidence; the policy decides with the rest
    manifest_att = select_manifest([a for _, a in verified], name, version)
    digest_hex = next(iter(manifest_att.statement.subject_sha256s()))
    about = [(d, a) for d, a in verified if digest_hex in a.statement.subject_sha256s()]
    decision = evaluate(policy, [a for _, a in about], f"sha256:{digest_hex}")
    signed = manifest_from_json(manifest_att.predicate["files"], manifest_att.predicate.get("ignores", ()))
    if signed.digest_hex != digest_hex:
        raise PullDenied("signed manifest does not hash to its own subject digest")
    return PullPlan(decision, signed, [d for d, _ in about])


def _download(
    source: Source, entry_path: str, size: int, digest: str, target: Path, tick: Callable[[int], None]
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    got = 0
    with open(target, "wb") as f:
        for chunk in source.stream(entry_path):
            got += len(chunk)
            if got > size:
                raise PullDenied(f"{entry_path}: source sent more than the signed {size} bytes")
            h.update(chunk)
            f.write(chunk)
            tick(len(chunk))
        f.flush()
        os.fsync(f.fileno())
    if got != size or h.hexdigest() != digest:
        raise PullDenied(
            f"{entry_path}: downloaded bytes do not match the signed manifest (sha256 {h.hexdigest()})"
        )


def pull(
    name: str,
    version: str,
    bundles: list[tuple[str, bytes]],
    policy: Policy,
    source: Source,
    dest: Path,
    trust: Trust | None = None,
    progress: Callable[[int], None] | None = None,
) -> PullResult:
    """Decide, then download into place atomically. Raises ``PullDenied`` and writes nothing on denial."""
    if dest.exists():
        raise UsageError(f"{dest}: already exists; pull into a new folder")
    plan = decide(bundles, name, version, policy, policy.trust(trust))
    decision, signed = plan.decision, plan.manifest
    if not decision.allowed:
        reasons = "; ".join(f"{r.code}: {r.message}" for r in decision.reasons)
        raise PullDenied(f"policy denies {name}@{version}: {reasons}", decision)
    advertised = source.advertised([f.path for f in signed.files])
    for f in signed.files:
        claim = advertised.get(f.path)
        if claim and (
            ("sha256" in claim and claim["sha256"] != f.digest) or (claim.get("size") not in (None, f.size))
        ):
            raise PullDenied(
                f"{f.path}: the source advertises {claim}, not the signed sha256 {f.digest} / {f.size} bytes"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        for f in signed.files:
            _download(source, f.path, f.size, f.digest, staging / f.path, progress or (lambda n: None))
        for i, data in enumerate(plan.bundles):  # ignored by the manifest; lets the guard verify offline
            (staging / f"attestation-{i:03d}.sigstore.json").write_bytes(data)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PullResult(dest, decision.model_digest, decision, len(signed.files), signed.total_size)
