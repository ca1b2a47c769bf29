"""Sigstore keyless signing and verification, through sigstore-python's own code paths.

Signing: an OIDC identity token buys a short-lived Fulcio certificate, the DSSE envelope is logged in
Rekor (v1 or v2, whatever the signing config names) and optionally timestamped; the result is a
bundle v0.3. Verification: sigstore-python's ``Verifier.verify_dsse`` checks the certificate chain,
SCT, log proofs, timestamps and the identity policy. It does *not* check the subject against a model:
the caller (``attest.verifying``) does that, and the predicate schema check, for every mode.

Trust comes from the public-good instance by default (its TUF repository; ``offline`` uses the root
embedded in sigstore-python, which may be stale), from ``staging``, or from a ClientTrustConfig /
TrustedRoot JSON file for a private deployment.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.x509 import (
    Certificate,
    ObjectIdentifier,
    OtherName,
    RFC822Name,
    SubjectAlternativeName,
    UniformResourceIdentifier,
)

from attest.errors import AttestError, SigningError, UsageError, VerificationError

if TYPE_CHECKING:
    from sigstore.models import ClientTrustConfig, TrustedRoot
    from sigstore.oidc import IdentityToken

    from attest.verifying import IdentityRule, SignerIdentity, Trust

_OIDC_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_OIDC_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_SAN_OTHERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")

_CLIENT_TRUST_CONFIG = "application/vnd.dev.sigstore.clienttrustconfig"


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{what} {path} is not a JSON object")
    return doc


def load_trust_config(
    path: Path | None = None, *, offline: bool = False, staging: bool = False
) -> ClientTrustConfig:
    """The ClientTrustConfig to sign with: a file (private deployment), staging, or public-good."""
    from sigstore.models import ClientTrustConfig

    try:
        if path is not None:
            return ClientTrustConfig.from_json(json.dumps(_read_json(path, "trust config")))
        if staging:
            return ClientTrustConfig.staging(offline=offline)
        return ClientTrustConfig.production(offline=offline)
    except AttestError:
        raise
    except Exception as exc:
        where = str(path) if path else ("staging" if staging else "the public-good instance")
        raise UsageError(f"cannot load Sigstore trust config from {where}: {_first_line(exc)}") from None


def load_trusted_root(
    path: Path | None = None, *, offline: bool = False, staging: bool = False
) -> TrustedRoot:
    """The TrustedRoot to verify with; ``path`` may hold a ClientTrustConfig or a bare TrustedRoot."""
    from sigstore.models import TrustedRoot

    if path is not None:
        doc = _read_json(path, "trust config")
        if str(doc.get("mediaType", "")).startswith(_CLIENT_TRUST_CONFIG) or "trustedRoot" in doc:
            return load_trust_config(path).trusted_root
        try:
            return TrustedRoot.from_file(str(path))
        except Exception as exc:
            raise UsageError(f"cannot load Sigstore trusted root {path}: {_first_line(exc)}") from None
    return load_trust_config(None, offline=offline, staging=staging).trusted_root


@functools.lru_cache(maxsize=8)
def _verifier(path: Path | None, offline: bool, staging: bool, version: tuple[int, int]) -> Any:
    """One sigstore ``Verifier`` per trust root per process: a registry or ``attest verify`` with many
    bundles must not refresh TUF (a network round trip) or re-parse the root for each one. ``version``
    (mtime, size of the file) makes an edited trust-config file load afresh."""
    from sigstore.verify import Verifier

    try:
        return Verifier(trusted_root=load_trusted_root(path, offline=offline, staging=staging))
    except AttestError:
        raise
    except Exception as exc:
        raise UsageError(f"unusable Sigstore trusted root: {_first_line(exc)}") from None


def _file_version(path: Path | None) -> tuple[int, int]:
    if path is None:
        return (0, 0)
    try:
        st = Path(path).stat()
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


# --- signing ---------------------------------------------------------------------------------------


def resolve_identity_token(
    explicit: str | None = None, *, interactive: bool = True, oidc_url: str | None = None
) -> IdentityToken:
    """An OIDC identity token: explicit, ``SIGSTORE_ID_TOKEN``, ambient CI credential, or browser flow.

    The order matches the sigstore CLI, so a workflow that works with ``sigstore sign`` works here.
    """
    from sigstore.oidc import IdentityError, IdentityToken, Issuer, detect_credential

    raw = explicit or os.environ.get("SIGSTORE_ID_TOKEN")
    source = "--identity-token" if explicit else "SIGSTORE_ID_TOKEN"
    if not raw:
        try:
            raw = detect_credential()
        except IdentityError as exc:
            raise SigningError(f"ambient OIDC credential detection failed: {_first_line(exc)}") from None
        source = "ambient CI credential"
    if not raw and interactive and oidc_url:
        try:
            return Issuer(oidc_url).identity_token()
        except Exception as exc:
            raise SigningError(f"interactive OIDC sign-in failed: {_first_line(exc)}") from None
    if not raw:
        raise SigningError(
            "no OIDC identity token: pass --identity-token, set SIGSTORE_ID_TOKEN, run in CI with an "
            "ambient identity (e.g. GitHub Actions 'id-token: write'), or sign with --key"
        )
    try:
        return IdentityToken(raw)
    except Exception as exc:
        raise SigningError(f"identity token from {source} is unusable: {_first_line(exc)}") from None


class SigstoreSigner:
    """Keyless signer: implements ``attest.signing.Signer`` with Fulcio + Rekor (+ TSA)."""

    def __init__(
        self,
        identity_token: str | None = None,
        trust_config: Path | None = None,
        *,
        staging: bool = False,
        interactive: bool = True,
    ) -> None:
        self._trust_config = load_trust_config(trust_config, staging=staging)
        try:
            oidc_url: str | None = self._trust_config.signing_config.get_oidc_url()
        except Exception:
            oidc_url = None
        self._token = resolve_identity_token(identity_token, interactive=interactive, oidc_url=oidc_url)

    @property
    def identity(self) -> str:
        """The identity the certificate will carry (as sigstore-python derives it from the token)."""
        return str(self._token.identity)

    @property
    def issuer(self) -> str:
        return str(self._token.issuer)

    def sign_statement(self, statement: bytes) -> dict[str, Any]:
        """Sign the exact statement bytes into a Sigstore bundle v0.3 (DSSE) JSON object."""
        from sigstore import dsse
        from sigstore.sign import SigningContext

        try:
            context = SigningContext.from_trust_config(self._trust_config)
            with context.signer(self._token, cache=True) as signer:
                bundle = signer.sign_dsse(dsse.Statement(statement))
            document: dict[str, Any] = json.loads(bundle.to_json())
        except Exception as exc:
            raise SigningError(f"Sigstore signing failed: {_first_line(exc)}") from None
        return document


# --- verification ----------------------------------------------------------------------------------


def certificate_identity(cert: Certificate) -> tuple[list[str], str | None]:
    """The SAN values (email, URI, Sigstore other-name) and OIDC issuer a Fulcio certificate carries."""
    try:
        san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except Exception:
        return [], _issuer(cert)
    names = [*san.get_values_for_type(RFC822Name), *san.get_values_for_type(UniformResourceIdentifier)]
    names += [
        o.value.decode(errors="replace")
        for o in san.get_values_for_type(OtherName)
        if o.type_id == _SAN_OTHERNAME
    ]
    return names, _issuer(cert)


def _issuer(cert: Certificate) -> str | None:
    """OIDC issuer: the v1 extension (raw string) or the v2 one (DER UTF8String)."""
    for ext in cert.extensions:
        if ext.oid == _OIDC_ISSUER_V1:
            return bytes(ext.value.value).decode(errors="replace")
    for ext in cert.extensions:
        if ext.oid == _OIDC_ISSUER_V2:
            return _der_utf8_string(bytes(ext.value.value))
    return None


def _der_utf8_string(der: bytes) -> str | None:
    """Decode a DER UTF8String (tag 0x0c, short or long length form); None if it is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, offset = der[1], 2
    if length & 0x80:
        n = length & 0x7F
        length, offset = int.from_bytes(der[2 : 2 + n], "big"), 2 + n
    body = der[offset : offset + length]
    return body.decode("utf-8", errors="replace") if len(body) == length else None


@dataclass(frozen=True)
class IdentityRegex:
    """A sigstore ``VerificationPolicy``: SAN full-matches a regular expression and the issuer is exact."""

    pattern: str
    issuer: str

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        names, issuer = certificate_identity(cert)
        if issuer != self.issuer:
            raise SigstoreVerificationError(f"certificate issuer {issuer!r} is not {self.issuer!r}")
        if not any(re.fullmatch(self.pattern, n) for n in names):
            raise SigstoreVerificationError(f"no certificate identity {names} matches /{self.pattern}/")


def identity_policy(rules: list[IdentityRule]) -> Any:
    """The sigstore policy accepting any one of the trusted identities (exact or regex, with issuer)."""
    from sigstore.verify import policy

    policies: list[Any] = [
        policy.Identity(identity=r.identity, issuer=r.issuer)
        if r.identity is not None
        else IdentityRegex(str(r.identity_regex), r.issuer)
        for r in rules
    ]
    return policies[0] if len(policies) == 1 else policy.AnyOf(policies)


def verify_keyless_bundle(document: dict[str, Any], trust: Trust) -> tuple[bytes, SignerIdentity]:
    """Verify a certificate-bearing bundle; return the DSSE payload bytes and the signer identity.

    Any exception from sigstore-python (some malformed entries raise ``AttributeError``) is a failed
    verification, reported on one line with the check that failed.
    """
    from attest.verifying import SignerIdentity

    if not trust.identities:
        raise VerificationError(
            "bundle is Sigstore-signed but no trusted identity was given "
            "(--identity/--identity-regex and --issuer)"
        )
    verifier = _verifier(trust.trust_config, trust.offline, trust.staging, _file_version(trust.trust_config))
    from sigstore.models import Bundle

    try:
        bundle = Bundle.from_json(json.dumps(document))
        _payload_type, payload = verifier.verify_dsse(bundle, identity_policy(trust.identities))
        cert = bundle.signing_certificate
    except Exception as exc:
        raise VerificationError(f"Sigstore verification failed: {_first_line(exc)}") from None
    names, issuer = certificate_identity(cert)
    candidates = [SignerIdentity(identity=n, issuer=issuer) for n in names]
    matched = next((c for c in candidates if any(r.matches(c) for r in trust.identities)), None)
    if matched is None:  # unreachable unless the two identity checks disagree: fail closed
        raise VerificationError(f"certificate identity {names} (issuer {issuer}) is not trusted")
    return payload, matched


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """One bounded line: some sigstore messages embed whole proofs and checkpoints."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else ""
    if len(line) > limit:
        line = line[:limit] + "…"
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def keyless_signer(
    identity_token: str | None = None, trust_config: Path | None = None, staging: bool = False
) -> SigstoreSigner:
    """The signer ``attest sign`` uses without ``--key``; the browser flow only on a terminal."""
    return SigstoreSigner(identity_token, trust_config, staging=staging, interactive=sys.stdin.isatty())


def identity_rules(
    identities: tuple[str, ...], regexes: tuple[str, ...], issuer: str | None
) -> list[IdentityRule]:
    """Command-line ``--identity``/``--identity-regex`` + ``--issuer`` as trusted identity rules."""
    from attest.verifying import IdentityRule

    if (identities or regexes) and not issuer:
        raise UsageError("--identity/--identity-regex need --issuer (the OIDC issuer URL)")
    if issuer and not (identities or regexes):
        raise UsageError("--issuer needs --identity or --identity-regex")
    for pattern in regexes:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise UsageError(
                f"--identity-regex {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    assert issuer is not None or not (identities or regexes)
    return [IdentityRule(str(issuer), identity=i) for i in identities] + [
        IdentityRule(str(issuer), identity_regex=r) for r in regexes
    ]
