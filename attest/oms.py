"""Interoperability with OpenSSF model-signing v1.0 (OMS) signatures, both ways.

Verifying: an OMS subject digest is sha256 over the concatenated per-file digests and does not bind
names; so besides checking the subject against the listed resources, the verifier compares every listed
name and digest with the files on disk, which does bind them. OMS ignore paths are relative to the model
root and are re-applied (anchored, literally) exactly as recorded. Files mode and shard mode, sha256 and
BLAKE2b are accepted; an unsigned file on disk is always a failure (there is no "ignore unsigned files"),
a resource name that climbs out of the model is refused before anything is read, and an empty file added
after signing is caught in shard mode too (model_signing 1.1.1 misses it).

Signing: ``oms_statement`` turns a model-attest manifest into the exact statement model_signing writes
(subject = folder name + root digest, ``resources[]``, ``serialization``), with ignore paths sorted so the
same model always gives the same payload bytes. Certificate-signed OMS bundles (a private X.509 chain
instead of Sigstore's Fulcio) are verified here too: ``verify_certificate_chain``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attest.errors import UsageError, VerificationError
from attest.manifest import Manifest, manifest_from_json
from attest.statement import Statement, build_statement

if TYPE_CHECKING:
    from attest.bundle import ParsedBundle
    from attest.verifying import SignerIdentity, Trust

OMS_PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# What model_signing ignores at the top of every model unless told otherwise (--ignore-git-paths).
OMS_GIT_PATHS: tuple[str, ...] = (".git", ".gitattributes", ".github", ".gitignore")
# model_signing's default signature file; recorded as an ignore path when written inside the model.
OMS_DEFAULT_SIGNATURE = "model.sig"
# hash_type -> hashlib constructor name; blake3 is not in hashlib and is refused with a clear message.
_HASHES = {"sha256": "sha256", "blake2b": "blake2b"}
_SHARD_NAME = re.compile(r"^(?P<path>.+):(?P<start>[0-9]+):(?P<end>[0-9]+)$")
_CHUNK = 1 << 20
_MISMATCH = "0" * 64  # a digest no file has: the diff then reports the file as changed


def _glob_escape(path: str) -> str:
    """A literal path as a gitignore pattern for ``attest._internal.walk.is_ignored``.

    Gitignore escapes with a backslash: ``\\*``, ``\\?``, ``\\[`` and ``\\\\`` match themselves, and a
    trailing space, which gitignore strips, is kept as ``\\ ``. (Bracketing, ``[[]``, is read by
    ``pathspec`` as a nested set: Python warns and the meaning is not guaranteed.)
    """
    escaped = re.sub(r"([\\*?\[])", r"\\\1", path)
    body = escaped.rstrip(" ")
    return body + "\\ " * (len(escaped) - len(body))


def oms_ignores(predicate: dict[str, Any]) -> tuple[str, ...]:
    """OMS ignore paths as anchored, literal model-attest ignore patterns.

    A path that is empty, absolute or holds ``..`` would ignore the whole model or something outside
    it: such a signature is refused rather than reinterpreted.
    """
    paths = predicate.get("serialization", {}).get("ignore_paths", [])
    out = []
    for p in paths:
        body = str(p).strip("/")
        if not body or body == "." or ".." in body.split("/") or str(p).startswith("/"):
            raise VerificationError(f"OMS ignore path {p!r} is not a path inside the model")
        out.append("/" + _glob_escape(body.removeprefix("./")))
    return tuple(out)


def oms_walk_ignores(ignore_paths: Sequence[str]) -> tuple[str, ...]:
    """The patterns to hash a model with before signing it in OMS form (literal, anchored paths)."""
    return oms_ignores({"serialization": {"ignore_paths": list(ignore_paths)}})


def oms_root(resources: list[dict[str, Any]]) -> str:
    """The OMS root digest, over the resources in the order they were signed."""
    return hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()


def check_ignore_paths(paths: Sequence[str]) -> list[str]:
    """User ``--ignore`` values for OMS output: literal relative paths (OMS has no globs), sorted."""
    out = set()
    for p in paths:
        body = p.strip("/").removeprefix("./")
        if not body or body == "." or ".." in body.split("/") or p.startswith("/"):
            raise UsageError(f"--ignore {p!r}: OMS ignore paths are paths inside the model")
        if any(c in body for c in "*?["):
            raise UsageError(f"--ignore {p!r}: OMS ignore paths are literal paths, not glob patterns")
        out.add(body)
    return sorted(out)


def oms_statement(
    manifest: Manifest, name: str, ignore_paths: Sequence[str], allow_symlinks: bool = False
) -> bytes:
    """The OMS v1.0 statement for a hashed model, as model_signing ``sign`` writes it (files, sha256).

    ``manifest`` must have been computed with ``oms_walk_ignores(ignore_paths)``; resources keep the
    manifest's UTF-8 byte order, and the root digest is taken over that order (OMS verifiers recompute
    it from the listed order, so any consistent order verifies).
    """
    resources = [{"name": f.path, "algorithm": "sha256", "digest": f.digest} for f in manifest.files]
    predicate = {
        "serialization": {
            "method": "files",
            "hash_type": "sha256",
            "allow_symlinks": allow_symlinks,  # model_signing refuses links unless this says so
            "ignore_paths": sorted(set(ignore_paths)),
        },
        "resources": resources,
    }
    return build_statement(name, oms_root(resources), OMS_PREDICATE_TYPE, predicate)


def _safe_name(name: str) -> str:
    if not name or name.startswith("/") or "\\" in name or any(s in ("", ".", "..") for s in name.split("/")):
        raise VerificationError(f"OMS resource {name!r} is not a path inside the model")
    return name


def _hash_range(path: Path, algorithm: str, start: int, end: int) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _shards_by_file(
    resources: list[dict[str, Any]], shard_size: int
) -> dict[str, list[tuple[int, int, str]]]:
    """Group shard resources by file; each file's shards must tile it from 0, ``shard_size`` apiece."""
    files: dict[str, list[tuple[int, int, str]]] = {}
    for r in resources:
        m = _SHARD_NAME.match(str(r["name"]))
        if m is None:
            raise VerificationError(f"OMS shard resource {r['name']!r} is not PATH:START:END")
        start, end = int(m["start"]), int(m["end"])
        if end < start:
            raise VerificationError(f"OMS shard {r['name']!r} ends before it starts")
        files.setdefault(_safe_name(m["path"]), []).append((start, end, str(r["digest"])))
    for name, shards in files.items():
        shards.sort()
        pos = 0
        for i, (start, end, _) in enumerate(shards):
            last = i == len(shards) - 1
            if start != pos or (end - start != shard_size and not last) or end - start > shard_size:
                raise VerificationError(f"OMS shards of {name!r} do not tile the file")
            pos = end
    return files


def _shard_size(serialization: dict[str, Any]) -> int:
    raw = serialization.get("shard_size")
    # model_signing 1.1.1 writes shard_size as a float (its own verifier then fails): accept 1e9 == 1000000000
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0 or int(raw) != raw:
        raise VerificationError(f"OMS shard_size {raw!r} is not a positive integer")
    return int(raw)


def oms_signed_manifest(statement: Statement, actual: Manifest, model: Path | None = None) -> Manifest:
    """Turn a verified OMS statement into a manifest comparable with the files on disk.

    Raises if the subject is not the root of the listed resources (the resources are then not what
    the signature covers), or if the predicate is not one this verifier can check soundly. In files
    mode with sha256 the signed digests are compared directly; for BLAKE2b and for shard mode the
    listed files (only those that exist in ``actual``, so nothing outside the model is ever opened)
    are re-hashed from ``model``, and a file whose digests all match is given its actual sha256.
    """
    predicate = statement.predicate
    resources = predicate.get("resources")
    serialization = predicate.get("serialization")
    if not isinstance(resources, list) or not resources or not isinstance(serialization, dict):
        raise VerificationError("OMS signature lists no resources")
    try:
        root = oms_root(resources)
    except (KeyError, TypeError, ValueError):
        raise VerificationError("OMS resource digests are malformed") from None
    if root not in statement.subject_sha256s():
        raise VerificationError("OMS subject digest is not the root of the signed resources")
    hash_type = str(serialization.get("hash_type", ""))
    if hash_type not in _HASHES:
        raise VerificationError(f"OMS hash_type {hash_type!r} is not supported (sha256, blake2b)")
    method = serialization.get("method")
    # model_signing names shard digests "<hash>-sharded-<shard size>"
    algorithm = f"{hash_type}-sharded-{_shard_size(serialization)}" if method == "shards" else hash_type
    if any(r.get("algorithm") != algorithm for r in resources):
        raise VerificationError(f"OMS resources use another algorithm than {algorithm}")
    oms_ignores(predicate)  # refuse unsafe ignore paths here too
    by_path = actual.by_path()
    if method == "files":
        names = [_safe_name(str(r["name"])) for r in resources]
        if len(set(names)) != len(names):
            raise VerificationError("OMS resources list a file twice")
        if hash_type == "sha256":
            entries = [
                {"path": n, "size": by_path[n].size if n in by_path else -1, "digest": r["digest"]}
                for n, r in zip(names, resources, strict=True)
            ]
            return manifest_from_json(entries, oms_ignores(predicate))
        spans = {
            n: [(0, by_path[n].size if n in by_path else 0, str(r["digest"]))]
            for n, r in zip(names, resources, strict=True)
        }
    elif method == "shards":
        spans = _shards_by_file(resources, _shard_size(serialization))
    else:
        raise VerificationError(f"OMS serialization method {method!r} is not supported (files, shards)")
    if model is None:
        raise VerificationError(f"OMS {method}/{hash_type} signatures need the model folder to re-hash")
    return manifest_from_json(
        _rehashed_entries(spans, by_path, Path(model), _HASHES[hash_type], method), oms_ignores(predicate)
    )


def _rehashed_entries(
    spans: dict[str, list[tuple[int, int, str]]],
    by_path: dict[str, Any],
    model: Path,
    algorithm: str,
    method: str,
) -> list[dict[str, Any]]:
    root = model.resolve()
    entries = []
    for name, shards in sorted(spans.items(), key=lambda kv: kv[0].encode()):
        entry = by_path.get(name)
        if entry is None:  # missing on disk: the diff reports it; nothing is opened
            entries.append({"path": name, "size": -1, "digest": _MISMATCH})
            continue
        signed_size = shards[-1][1] if method == "shards" else entry.size
        ok = signed_size == entry.size
        file_path = root / name if root.is_dir() else root
        for start, end, digest in shards:
            if not ok:
                break
            ok = _hash_range(file_path, algorithm, start, end) == digest.lower()
        entries.append({"path": name, "size": entry.size, "digest": entry.digest if ok else _MISMATCH})
    return entries


# --- certificate-signed OMS bundles (model_signing ``sign certificate``) ---------------------------


def _certificate_identity(cert: Any) -> str:
    """The leaf's identity: its first e-mail, URI or DNS SAN, else its subject DN (RFC 4514)."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            values = san.get_values_for_type(kind)
            if values:
                return str(values[0])
    return str(cert.subject.rfc4514_string())


def load_certificates(paths: Sequence[Path]) -> list[Any]:
    """PEM certificates from files (each file may hold several); a clear error for anything else."""
    from cryptography import x509

    certs: list[Any] = []
    for p in paths:
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            raise UsageError(f"{p}: cannot read certificates: {exc.strerror}") from None
        try:
            certs += x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise UsageError(f"{p}: not PEM certificates ({str(exc).splitlines()[0]})") from None
    return certs


def verify_certificate_chain(
    document: dict[str, Any], anchors: Sequence[Any], now: datetime | None = None
) -> tuple[Any, str, str]:
    """Verify a bundle's ``x509CertificateChain`` against trust anchors.

    Returns ``(leaf public key, identity, issuer)``: the identity is the leaf's SAN or subject DN and
    the issuer is ``x509:`` plus the subject DN of the anchor the chain ends at, so a policy pins a
    signer the way it pins a Sigstore identity (model_signing cannot pin one at all). The chain is
    checked at the current time (these bundles carry no trusted timestamp, so an expired leaf fails,
    unlike model_signing, which checks at the leaf's start date), and the leaf must be allowed to sign
    (KeyUsage digitalSignature or ExtendedKeyUsage codeSigning; neither may exclude it).
    """
    import base64

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

    if not anchors:
        raise VerificationError(
            "bundle is signed with an X.509 certificate but no trusted CA was given (--certificate-chain)"
        )
    try:
        raw = document["verificationMaterial"]["x509CertificateChain"]["certificates"]
        certs = [x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True)) for c in raw]
    except Exception:
        raise VerificationError("bundle certificate chain is malformed") from None
    if not certs:
        raise VerificationError("bundle certificate chain is empty")
    leaf, intermediates = certs[0], certs[1:]
    # OMS signing certificates in the wild (model_signing's own test CA) are marked CA and have no
    # SAN, and none has the TLS client EKU: the leaf's BasicConstraints, SAN, KeyUsage and EKU are
    # left to the checks below; everything else is the Web PKI profile (the CA certificates fully).
    agnostic = (x509.BasicConstraints, x509.SubjectAlternativeName, x509.KeyUsage, x509.ExtendedKeyUsage)
    ee_policy = ExtensionPolicy.webpki_defaults_ee()
    for ext in agnostic:
        ee_policy = ee_policy.may_be_present(ext, Criticality.AGNOSTIC, None)
    builder = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .time(now or datetime.now(UTC))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
    )
    try:
        chain = builder.build_client_verifier().verify(leaf, intermediates).chain
    except Exception as exc:
        raise VerificationError(f"certificate chain does not verify: {str(exc).splitlines()[0]}") from None
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        ku = None
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if (ku is None and eku is None) or (ku is not None and not ku.digital_signature):
        raise VerificationError("signing certificate is not allowed to sign (KeyUsage digitalSignature)")
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise VerificationError("signing certificate is not allowed to sign code (ExtendedKeyUsage)")
    return leaf.public_key(), _certificate_identity(leaf), "x509:" + chain[-1].subject.rfc4514_string()


def verify_certificate_signature(parsed: ParsedBundle, trust: Trust) -> SignerIdentity:
    """Check a certificate-signed bundle: chain to a trusted CA, then the DSSE signature by the leaf.

    The caller (``attest.verifying``) then applies the identity policy and everything else, exactly as
    for Sigstore bundles; the signer is ``identity`` = leaf SAN or subject, ``issuer`` = ``x509:<CA DN>``.
    """
    from securesystemslib.signer import Signature, SSlibKey

    from attest.bundle import pae
    from attest.keys import fingerprint
    from attest.verifying import SignerIdentity

    key, identity, issuer = verify_certificate_chain(parsed.document, trust.certificate_anchors)
    sslib_key = SSlibKey.from_crypto(key, keyid=fingerprint(key))
    message = pae(parsed.payload_type, parsed.payload)
    for sig in parsed.signatures:
        try:
            sslib_key.verify_signature(Signature(sslib_key.keyid, sig.sig.hex()), message)
        except Exception:
            continue
        return SignerIdentity(identity=identity, issuer=issuer)
    raise VerificationError("signature does not verify with the signing certificate's key")
