"""Verified download: decide with the registry first, then fetch, hash while fetching, and only then
move the model into place.

Order matters. The policy is evaluated over the registry's attestations before a single byte of the
model is requested, so a denied model is never on disk. Each file is streamed into a private staging
folder beside the destination while it is hashed; a file whose size or sha256 differs from the signed
manifest aborts the pull, and the staging folder is removed. Only a complete, matching set of files is
renamed into place (one atomic ``rename`` that never replaces a destination created meanwhile), so an
interrupted pull leaves nothing half-written.

Transfers are bounded (``TransferLimits``): an overall deadline, a minimum rate per request, retries
with backoff that resume a file where it stopped (HTTP ``Range``). A source that cannot deliver is
``PullUnavailable`` (exit 3, "could not decide"); bytes that differ from what was signed are
``PullDenied`` (exit 1).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from attest._internal.atomic import rename_noreplace
from attest._internal.capped import os_error
from attest.errors import AttestError, UndecidedError, UsageError, VerificationError
from attest.evidence import collect_evidence
from attest.hashing import ProgressCallback
from attest.manifest import FileEntry, Manifest, manifest_from_json, progress_bar
from attest.policy import Decision, Policy
from attest.predicates import MODEL_MANIFEST_V1
from attest.verifying import Trust, VerifiedAttestation

CHUNK = 1024 * 1024
# HTTP answers worth another try: the mirror is overloaded or restarting, not refusing.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class PullDenied(AttestError):
    """The policy denied the model, or a downloaded file did not match: nothing was written."""

    exit_code = 1
    http_status = 403

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class PullUnavailable(UndecidedError):
    """The source could not deliver (unreachable, refused, too slow, past the deadline): exit 3.

    Not a denial: nothing is known to be wrong with the model, and the staging folder is removed.
    """


class TransientSourceError(Exception):
    """A failure worth retrying (5xx, 429, connection reset, read timeout); internal to the pull loop."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class TransferLimits:
    """How long a pull may take and how slow a source may be before it is given up on.

    ``deadline`` bounds the whole download (seconds). A source must deliver at least ``min_rate``
    bytes per second averaged over every ``rate_window`` seconds of a request, so a mirror dripping
    one byte at a time is abandoned after one window instead of holding the pull forever; a request
    that delivers nothing at all for ``rate_window`` seconds times out. Connection errors, read
    timeouts and HTTP 5xx/429 are retried ``retries`` times with exponential backoff (``backoff``
    doubling up to ``backoff_max`` seconds, or the server's ``Retry-After`` if shorter), resuming
    the file at the byte where it stopped (HTTP ``Range``).
    """

    deadline: float = 24 * 3600.0
    min_rate: float = 64 * 1024.0
    rate_window: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.deadline <= 0 or self.rate_window <= 0 or self.min_rate < 0 or self.retries < 0:
            raise UsageError("pull limits: deadline and rate window must be > 0, min rate and retries >= 0")


class _Clock:
    """The pull's deadline: every wait and every chunk is checked against it."""

    def __init__(self, limits: TransferLimits) -> None:
        self.limits = limits
        self.end = time.monotonic() + limits.deadline

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def check(self, what: str) -> None:
        if self.remaining() <= 0:
            raise PullUnavailable(f"{what}: pull deadline of {self.limits.deadline:g} s exceeded")

    def read_timeout(self) -> float:
        """No single read may outlast a rate window or the time left."""
        return max(0.05, min(self.limits.rate_window, self.remaining()))

    def sleep(self, seconds: float, what: str) -> None:
        if seconds >= self.remaining():
            raise PullUnavailable(f"{what}: pull deadline of {self.limits.deadline:g} s exceeded")
        time.sleep(seconds)


class _RateMeter:
    """Bytes per ``rate_window`` of one request; too few in a full window gives the source up."""

    def __init__(self, limits: TransferLimits, what: str) -> None:
        self.limits, self.what = limits, what
        self.start = time.monotonic()
        self.count = 0

    def add(self, n: int) -> None:
        self.count += n
        elapsed = time.monotonic() - self.start
        if elapsed < self.limits.rate_window:
            return
        rate = self.count / elapsed
        if rate < self.limits.min_rate:
            raise PullUnavailable(
                f"{self.what}: source too slow ({rate:.0f} B/s over {elapsed:.1f} s, "
                f"minimum {self.limits.min_rate:g} B/s)"
            )
        self.start, self.count = time.monotonic(), 0


class Source(Protocol):
    """Where the bytes come from. ``advertised`` is what the source claims before download.

    ``stream`` yields the file's bytes from byte ``offset`` on; it raises ``TransientSourceError``
    for failures worth a retry and ``PullUnavailable`` / ``PullDenied`` for the others.
    """

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]: ...

    def stream(self, path: str, offset: int = 0, read_timeout: float | None = None) -> Iterator[bytes]: ...


@dataclass
class LocalSource:
    root: Path

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def stream(self, path: str, offset: int = 0, read_timeout: float | None = None) -> Iterator[bytes]:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise VerificationError(f"{path}: resolves outside the source folder")
        try:
            with open(target, "rb") as f:
                f.seek(offset)
                while chunk := f.read(CHUNK):
                    yield chunk
        except OSError as exc:
            raise PullUnavailable(f"{path}: cannot read from source: {exc.strerror}") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP-date: fall back to our own backoff


@dataclass
class HttpSource:
    """A plain HTTP(S) mirror: ``GET <base>/<path>``. Never sent any credential."""

    base: str
    client: Any = field(default=None)

    def __post_init__(self) -> None:
        import httpx

        self.client = self.client or httpx.Client(follow_redirects=True, timeout=60.0)

    def url(self, path: str) -> str:
        return self.base.rstrip("/") + "/" + urllib.parse.quote(path)

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def auth_headers(self, url: str) -> dict[str, str]:
        """Credentials for ``url``: none for a plain mirror."""
        return {}

    def refused(self, path: str, status: int) -> AttestError:
        return PullUnavailable(f"{path}: source answered HTTP {status}")

    def stream(self, path: str, offset: int = 0, read_timeout: float | None = None) -> Iterator[bytes]:
        import httpx

        url = self.url(path)
        headers = {**self.auth_headers(url), **({"Range": f"bytes={offset}-"} if offset else {})}
        timeout = httpx.Timeout(60.0, read=read_timeout) if read_timeout else httpx.Timeout(60.0)
        try:
            with self.client.stream("GET", url, headers=headers, timeout=timeout) as resp:
                status = resp.status_code
                if status in RETRY_STATUSES or status >= 500:
                    raise TransientSourceError(
                        f"source answered HTTP {status}", _retry_after(resp.headers.get("Retry-After"))
                    )
                skip = 0
                if status == 206 and offset:
                    if not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                        raise PullUnavailable(f"{path}: source answered a range we did not ask for")
                elif status == 200:
                    skip = offset  # the source ignored Range: drop what we already have
                else:
                    raise self.refused(path, status)
                for chunk in resp.iter_bytes():
                    if skip:
                        dropped = min(skip, len(chunk))
                        skip -= dropped
                        chunk = chunk[dropped:]
                    if chunk:
                        yield chunk
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            raise TransientSourceError(f"{type(exc).__name__}: {exc}") from None
        except httpx.HTTPError as exc:
            raise PullUnavailable(f"{path}: download failed: {exc}") from None


@dataclass
class HubSource(HttpSource):
    """The Hugging Face Hub (or a compatible endpoint): ``hf://org/name[@revision]``.

    The hub advertises each LFS file's sha256 (its ``oid``) and size; those are compared with the
    signed manifest before any download, so a swapped file on the hub is caught without fetching it.
    The token for gated and private repositories comes from where ``huggingface_hub`` keeps it
    (``HF_TOKEN``, then the token file written by ``hf auth login``); it is sent to the hub's own
    origin only, never to the CDN a download is redirected to, nor to a plain mirror.
    """

    repo_id: str = ""
    revision: str = "main"
    endpoint: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from huggingface_hub import constants, get_token

        self.endpoint = (self.endpoint or constants.ENDPOINT).rstrip("/")
        if self.token is None:
            self.token = get_token()

    def url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, path, revision=self.revision, endpoint=self.endpoint)

    def auth_headers(self, url: str) -> dict[str, str]:
        if self.token and _origin(url) == _origin(self.endpoint or ""):
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def refused(self, path: str, status: int) -> AttestError:
        if status in (401, 403):
            hint = "the token was refused" if self.token else "set HF_TOKEN or run `hf auth login`"
            return PullUnavailable(
                f"{path}: hub answered HTTP {status}: gated or private repository ({hint})"
            )
        return super().refused(path, status)

    def advertised(self, paths: list[str]) -> dict[str, dict[str, Any]]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            info = HfApi(endpoint=self.endpoint, token=self.token or False).model_info(
                self.repo_id, revision=self.revision, files_metadata=True
            )
        except (HfHubHTTPError, OSError, ValueError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status in (401, 403):
                raise self.refused(f"hub: {self.repo_id}@{self.revision}", status) from None
            raise PullUnavailable(
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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


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
    """Apply the evidence rule to the registry's bundles and evaluate the policy; no model byte yet.

    The same rule as ``attest verify`` (``attest.evidence``): unverifiable or untrusted bundles are
    reported in ``decision.rejected`` and change nothing; the manifest is chosen among trusted ones.
    """
    trusted = collect_evidence(bundles, policy, trust)
    manifest_att = select_manifest(trusted.verified, name, version)
    digest_hex = next(iter(manifest_att.statement.subject_sha256s()))
    evidence = trusted.for_model(f"sha256:{digest_hex}", report_other_models=False)
    decision = evidence.decide()
    signed = manifest_from_json(manifest_att.predicate["files"], manifest_att.predicate.get("ignores", ()))
    if signed.digest_hex != digest_hex:
        raise PullDenied("signed manifest does not hash to its own subject digest")
    return PullPlan(decision, signed, evidence.bundles())


def _download(
    source: Source,
    entry: FileEntry,
    target: Path,
    tick: Callable[[int], None],
    limits: TransferLimits,
    clock: _Clock,
) -> None:
    """Stream one file into ``target`` while hashing it; retry transient failures, resuming at the
    byte where the previous attempt stopped, within the limits."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "wb")  # noqa: SIM115 - closed below; OSError becomes a one-line error
    except OSError as exc:
        raise os_error(target, exc, "cannot write") from None
    h = hashlib.sha256()
    got = 0
    attempt = 0
    with out:
        while True:
            clock.check(entry.path)
            meter = _RateMeter(limits, entry.path)
            try:
                for chunk in source.stream(entry.path, got, clock.read_timeout()):
                    got += len(chunk)
                    if got > entry.size:
                        raise PullDenied(f"{entry.path}: source sent more than the signed {entry.size} bytes")
                    h.update(chunk)
                    out.write(chunk)
                    tick(len(chunk))
                    meter.add(len(chunk))
                    clock.check(entry.path)
                break
            except TransientSourceError as exc:
                attempt += 1
                if attempt > limits.retries:
                    raise PullUnavailable(
                        f"{entry.path}: {exc} (gave up after {limits.retries} retries)"
                    ) from None
                delay = min(limits.backoff_max, limits.backoff * 2 ** (attempt - 1))
                if exc.retry_after is not None:
                    delay = min(delay, exc.retry_after)
                clock.sleep(delay, entry.path)
        out.flush()
        os.fsync(out.fileno())
    if got != entry.size or h.hexdigest() != entry.digest:
        raise PullDenied(
            f"{entry.path}: downloaded bytes do not match the signed manifest (sha256 {h.hexdigest()})"
        )


def pull(
    name: str,
    version: str,
    bundles: list[tuple[str, bytes]],
    policy: Policy,
    source: Source,
    dest: Path,
    trust: Trust | None = None,
    progress: bool | ProgressCallback = False,
    limits: TransferLimits | None = None,
) -> PullResult:
    """Decide, then download into place atomically. Raises ``PullDenied`` and writes nothing on denial.

    ``progress=True`` shows a bar on a terminal. Whatever stops the pull (a mismatch, the deadline,
    Ctrl-C, SIGTERM/SIGHUP in the CLI) removes the staging folder; ``dest`` appears complete or not at
    all, and a ``dest`` created by someone else meanwhile is never replaced.
    """
    limits = limits or TransferLimits()
    if dest.exists() or dest.is_symlink():
        raise UsageError(f"{dest}: already exists; pull into a new folder")
    for parent in dest.parents:  # refuse before asking the registry anything
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{dest}: {parent} is not a folder")
            break
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
    clock = _Clock(limits)
    # Named before it is made, inside the cleanup's try: SIGTERM and SIGHUP arrive as exceptions
    # (cli.main), and one landing between a mkdtemp and the try left the folder behind (a CI run on
    # a loaded machine). 64 random bits: another pull's folder is never this name.
    staging = dest.parent / f".{dest.name}.partial-{secrets.token_hex(8)}"
    try:
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging.mkdir(mode=0o700)
        except OSError as exc:
            raise os_error(dest, exc, "cannot create the destination") from None
        with progress_bar(signed.total_size, progress, "downloading", min_total=0) as tick:
            for f in signed.files:
                _download(source, f, staging / f.path, tick or (lambda n: None), limits, clock)
        for i, data in enumerate(plan.bundles):  # ignored by the manifest; lets the guard verify offline
            (staging / f"attestation-{i:03d}.sigstore.json").write_bytes(data)
        try:
            rename_noreplace(staging, dest)
        except FileExistsError:
            raise UsageError(
                f"{dest}: was created by someone else during the pull; left it alone, nothing written"
            ) from None
        except OSError as exc:
            raise os_error(dest, exc, "cannot move the download into place") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PullResult(dest, decision.model_digest, decision, len(signed.files), signed.total_size)
