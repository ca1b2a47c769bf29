"""Client of a model-attest registry: publish, query, fetch, admission — trusting the server for nothing.

Every answer that carries log entries is checked here: the checkpoint's signature against the log
key (pinned on first use or given explicitly), a consistency proof from the last checkpoint this
client verified for that registry (kept in a small per-registry file), each entry's inclusion proof,
and that the proven leaf records exactly the bundle served. A registry that rewrites its history is
caught on the next interaction and reported as a ``LogForkError``; the stored checkpoint is never
moved backwards or onto a fork.

The registry service lives in ``registry/``; this module speaks only HTTP to it.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from attest._internal import merkle
from attest._internal.log_leaf import check_leaf
from attest.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint
from attest.errors import AttestError, UsageError, VerificationError
from attest.verifying import Trust, VerifiedAttestation

if TYPE_CHECKING:
    from attest.policy import Policy

TOKEN_ENV = "ATTEST_REGISTRY_TOKEN"
STORE_ENV = "ATTEST_CHECKPOINT_DIR"


class LogForkError(VerificationError):
    """The registry served a checkpoint inconsistent with one this client verified before."""


class RegistryError(AttestError):
    """The registry refused a request or could not be reached; carries its HTTP status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def default_store_dir() -> Path:
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "model-attest" / "checkpoints"


class CheckpointStore:
    """The last verified checkpoint (and pinned log key) per registry, one JSON file each."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory else default_store_dir()
        self._lock = threading.Lock()

    def path_for(self, registry_url: str) -> Path:
        parts = urlsplit(registry_url)
        name = re.sub(r"[^A-Za-z0-9._-]", "_", (parts.netloc + parts.path).rstrip("/")) or "registry"
        return self.directory / f"{name}.json"

    def load(self, registry_url: str) -> dict[str, Any] | None:
        path = self.path_for(registry_url)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: unreadable checkpoint store: {exc}") from None
        return doc if isinstance(doc, dict) else None

    def save(self, registry_url: str, doc: dict[str, Any]) -> None:
        path = self.path_for(registry_url)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)


@dataclass(frozen=True)
class ProvenEntry:
    """A log entry whose inclusion proof verified against a checkpoint this client accepted."""

    log_index: int
    tree_size: int
    leaf: dict[str, Any]
    document: dict[str, Any]  # the entry JSON as served (bundle included when asked for)

    @property
    def bundle(self) -> dict[str, Any] | None:
        b = self.document.get("bundle")
        return b if isinstance(b, dict) else None


class RegistryClient:
    """One registry at ``url``; ``log_key`` (a C2SP vkey) pins the log key instead of trust on first use."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        store: CheckpointStore | None = None,
        log_key: str | None = None,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UsageError(f"registry URL {url!r} must start with http:// or https://")
        self.url = url.rstrip("/")
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        self.store = store or CheckpointStore()
        self._pinned = NoteVerifier.from_vkey(log_key) if log_key else None
        self._own_http = http is None
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self._lock = threading.Lock()

    # -- HTTP ----------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, auth: bool = False, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if auth or self.token:
            if not self.token:
                raise UsageError(f"a registry token is needed: pass --token or set ${TOKEN_ENV}")
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self.http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.url} unreachable: {exc}") from None
        if resp.status_code >= 400:
            try:
                message = resp.json().get("error") or resp.text
            except ValueError:
                message = resp.text
            raise RegistryError(f"registry refused ({resp.status_code}): {message}", resp.status_code)
        return (
            resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
        )

    # -- checkpoints -----------------------------------------------------------------------------------
    def log_verifier(self) -> NoteVerifier:
        """The log key: pinned by the caller, else remembered from first contact (and then enforced)."""
        if self._pinned is not None:
            return self._pinned
        stored = self.store.load(self.url)
        if stored and stored.get("vkey"):
            self._pinned = NoteVerifier.from_vkey(stored["vkey"])
            return self._pinned
        info = self._request("GET", "/v1/log/key")
        self._pinned = NoteVerifier.from_vkey(info["vkey"])
        return self._pinned

    def accept_checkpoint(self, note: str) -> Checkpoint:
        """Verify a checkpoint note and prove it consistent with the last one this client verified.

        Moves the stored checkpoint forward when ``note`` is newer; a failed proof is a fork.
        """
        verifier = self.log_verifier()
        checkpoint = verify_checkpoint(note, [verifier], origin=verifier.name)
        with self._lock:
            stored = self.store.load(self.url)
            if stored and stored.get("vkey") not in (None, verifier.vkey()):
                raise LogForkError(
                    f"registry {self.url} now signs with a different log key than the one pinned"
                )
            if stored and "treeSize" in stored:
                old_size, old_root = int(stored["treeSize"]), bytes.fromhex(stored["rootHash"])
                small, big = sorted(((old_size, old_root), (checkpoint.size, checkpoint.root_hash)))
                proof = [] if small[0] == big[0] else self._consistency(small[0], big[0])
                try:
                    merkle.verify_consistency(small[0], big[0], proof, small[1], big[1])
                except VerificationError as exc:
                    raise LogForkError(
                        f"registry {self.url} log forked: checkpoint of size {checkpoint.size} is not consistent "
                        f"with the verified checkpoint of size {old_size} ({exc.message})"
                    ) from None
                if checkpoint.size <= old_size:
                    return checkpoint
            self.store.save(
                self.url,
                {
                    "registry": self.url,
                    "origin": checkpoint.origin,
                    "vkey": verifier.vkey(),
                    "treeSize": checkpoint.size,
                    "rootHash": checkpoint.root_hash.hex(),
                    "checkpoint": note,
                },
            )
        return checkpoint

    def _consistency(self, first: int, last: int) -> list[bytes]:
        doc = self._request("GET", "/v1/log/proof/consistency", params={"firstSize": first, "lastSize": last})
        if int(doc.get("lastSize", -1)) != last:
            raise LogForkError(
                f"registry answered a consistency proof to size {doc.get('lastSize')}, not {last}"
            )
        return [bytes.fromhex(h) for h in doc["hashes"]]

    def sync(self) -> Checkpoint:
        """Fetch the latest checkpoint and prove it consistent with the stored one."""
        return self.accept_checkpoint(self._request("GET", "/v1/log/checkpoint")["checkpoint"])

    def prove_entry(self, doc: dict[str, Any]) -> ProvenEntry:
        """Check one served entry: checkpoint, inclusion proof of its leaf, and its bundle (if served)."""
        try:
            proof = doc["inclusionProof"]
            leaf_bytes = str(doc["leaf"]).encode()
            index, size = int(proof["logIndex"]), int(proof["treeSize"])
            hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        except (KeyError, TypeError, ValueError):
            raise VerificationError("registry entry carries no well-formed inclusion proof") from None
        checkpoint = self.accept_checkpoint(proof["checkpoint"])
        if checkpoint.size != size or index != doc.get("logIndex"):
            raise VerificationError("inclusion proof does not match its checkpoint or entry")
        merkle.verify_inclusion(merkle.leaf_hash(leaf_bytes), index, size, hashes, checkpoint.root_hash)
        bundle = doc.get("bundle")
        leaf = check_leaf(leaf_bytes, bundle) if isinstance(bundle, dict) else json.loads(leaf_bytes)
        return ProvenEntry(index, size, leaf, doc)

    # -- operations ------------------------------------------------------------------------------------
    def publish(self, bundle: bytes | dict[str, Any]) -> dict[str, Any]:
        """Publish one bundle; the returned entry's inclusion proof is verified before returning."""
        body = json.dumps(bundle).encode() if isinstance(bundle, dict) else bundle
        self.sync()
        doc: dict[str, Any] = self._request(
            "POST", "/v1/attestations", auth=True, content=body, headers={"Content-Type": "application/json"}
        )
        self.prove_entry(doc)
        return doc

    def query(
        self, include_bundle: bool = False, page_size: int = 100, **filters: Any
    ) -> Iterator[ProvenEntry]:
        """All entries matching ``filters`` (subjectDigest, name, predicateType, signer, since, until)."""
        params = {k: v for k, v in filters.items() if v is not None}
        params |= {"limit": page_size, "includeBundle": str(include_bundle).lower()}
        cursor: str | None = None
        while True:
            page = self._request(
                "GET", "/v1/attestations", params=params | ({"cursor": cursor} if cursor else {})
            )
            for doc in page["entries"]:
                yield self.prove_entry(doc)
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def model(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/v1/models/{name}")
        return result

    def admission_evaluate(self, model_digest: str, policy: dict[str, Any] | None = None) -> dict[str, Any]:
        """The registry's decision; its log evidence is proven here before the answer is returned."""
        body: dict[str, Any] = {"modelDigest": model_digest}
        if policy is not None:
            body["policy"] = policy
        doc: dict[str, Any] = self._request("POST", "/v1/admission/evaluate", json=body)
        for entry in doc.get("logEntries", []):
            self.prove_entry(entry)
        return doc

    def admission_review(self, review: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._request("POST", "/v1/admission/review", json=review)
        return result

    def close(self) -> None:
        if self._own_http:  # a client handed in by the caller stays the caller's to close
            self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _model_filter(model: str) -> dict[str, Any]:
    if re.fullmatch(r"(sha256:)?[0-9a-fA-F]{64}", model):
        return {"subjectDigest": model if model.startswith("sha256:") else "sha256:" + model}
    return {"name": model}


def fetch_logged_bundles(
    registry_url: str, model: str, client: RegistryClient | None = None, **client_kwargs: Any
) -> list[tuple[str, bytes]]:
    """(name, bundle bytes) of every attestation about ``model`` (a digest or org/name), each proven
    included in the registry's log; for ``attest.model_verification.verify_model`` as bundle inputs."""
    own = client is None
    client = client or RegistryClient(registry_url, **client_kwargs)
    try:
        client.sync()
        out = []
        for entry in client.query(include_bundle=True, **_model_filter(model)):
            if entry.bundle is None:
                raise VerificationError(f"registry served log entry {entry.log_index} without its bundle")
            out.append((f"{registry_url}#{entry.log_index}", json.dumps(entry.bundle).encode()))
        return out
    finally:
        if own:
            client.close()


def fetch_verified_attestations(
    registry_url: str, model: str, trust: Trust, policy: Policy | None = None, **client_kwargs: Any
) -> list[VerifiedAttestation]:
    """Fetch the attestations about ``model`` (``sha256:<hex>`` digest or ``org/name``), prove each is in
    the log, and keep the evidence by the one rule (``attest.evidence``): verified with ``trust``, signed
    by a signer ``policy`` trusts for that predicate (without a policy: any signer of ``trust``), and,
    when a digest is given, about that digest.

    Raises ``VerificationError`` on a log fork or a bad proof; a bundle that is not evidence is left out
    (the policy then decides with what remains, so a missing requirement becomes a denial).
    """
    from attest.evidence import collect_evidence
    from attest.policy import Policy

    expected = _model_filter(model).get("subjectDigest")
    bundles = fetch_logged_bundles(registry_url, model, **client_kwargs)
    evidence = collect_evidence(bundles, policy or Policy.default(trust), trust, model_digest=expected)
    return evidence.verified
