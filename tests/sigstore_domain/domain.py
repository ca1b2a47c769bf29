"""The trust domain itself: keys of every service, an HTTP front on 127.0.0.1, trust-config output."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.sigstore_domain import pki
from tests.sigstore_domain.rekor import RejectedEntry, TransparencyLog
from tests.sigstore_domain.tsa import TimestampAuthority

# variant name -> (Rekor major API version, whether the signing config names the TSA)
VARIANTS: dict[str, tuple[int, bool]] = {
    "rekor1-set": (1, False),
    "rekor1-tsa": (1, True),
    "rekor2-tsa": (2, True),
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class SigstoreDomain:
    """A complete, private Sigstore instance. ``name`` keeps two domains' hostnames apart."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.created = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1)
        self.issuer = f"https://oidc.{name}.test"
        self.fulcio_key = pki.new_key()
        self.fulcio_root = pki.make_root(
            f"{name} fulcio", "model-attest tests", self.fulcio_key, self.created
        )
        self.ct_key = pki.new_key()
        self.oidc_key = pki.new_key()
        self.rekor1 = TransparencyLog(f"rekor1.{name}.test", f"rekor1.{name}.test - 4242")
        self.rekor2 = TransparencyLog(f"rekor2.{name}.test", f"rekor2.{name}.test")
        self.tsa = TimestampAuthority(name, self.created)
        # GitHub Actions-style ambient credential: GET with this bearer returns a token for this workflow
        self.actions_request_token = "actions-request-" + name
        self.actions_workflow = (
            f"https://github.com/{name}-org/model/.github/workflows/release.yml@refs/heads/main"
        )
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("domain not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> SigstoreDomain:
        """Serve every endpoint on an ephemeral loopback port in a daemon thread."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"sigstore-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- OIDC ------------------------------------------------------------------------------------
    def mint_token(
        self, subject: str, *, issuer: str | None = None, lifetime: int = 600, audience: str = "sigstore"
    ) -> str:
        """An ES256 OIDC identity token from this domain's issuer (or a foreign ``issuer``)."""
        now = int(time.time())
        claims = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
        }
        return jwt.encode(claims, self.oidc_key, algorithm="ES256")

    # -- Fulcio ----------------------------------------------------------------------------------
    def issue_certificate(self, token: str, csr_pem: bytes) -> list[str]:
        """Fulcio: check the token and the CSR's proof of possession, return [leaf, root] PEMs."""
        claims = jwt.decode(
            token,
            self.oidc_key.public_key(),
            algorithms=["ES256"],
            audience="sigstore",
            issuer=self.issuer,
            options={"require": ["iss", "sub", "aud", "iat", "exp"]},
        )
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("CSR signature (proof of possession) does not verify")
        subject = str(claims["sub"])
        san: x509.GeneralName
        san = x509.UniformResourceIdentifier(subject) if "://" in subject else x509.RFC822Name(subject)
        public_key = csr.public_key()
        leaf = pki.make_fulcio_leaf(
            root=self.fulcio_root,
            root_key=self.fulcio_key,
            ct_key=self.ct_key,
            public_key=public_key,  # type: ignore[arg-type]
            san=san,
            issuer_url=str(claims["iss"]),
            now=dt.datetime.now(dt.UTC).replace(microsecond=0),
        )
        return [c.public_bytes(serialization.Encoding.PEM).decode() for c in (leaf, self.fulcio_root)]

    # -- trust material --------------------------------------------------------------------------
    def _log_instance(self, host: str, key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
        """A TransparencyLogInstance (tlog or CT log). ``host`` doubles as the checkpoint signer name,
        which sigstore-js looks for inside ``baseUrl``."""
        return {
            "baseUrl": f"https://{host}",
            "hashAlgorithm": "SHA2_256",
            "publicKey": {
                "rawBytes": _b64(pki.spki_der(key)),
                "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                "validFor": {"start": _rfc3339(self.created)},
            },
            "logId": {"keyId": _b64(pki.key_id(key))},
        }

    def trusted_root(self) -> dict[str, Any]:
        """The TrustedRoot JSON (v0.1) a verifier needs for this domain."""
        der = serialization.Encoding.DER
        subject = {"organization": "model-attest tests", "commonName": self.name}
        return {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [
                self._log_instance(log.name, log.key.public_key()) for log in (self.rekor1, self.rekor2)
            ],
            "certificateAuthorities": [
                {
                    "subject": subject,
                    "uri": f"https://fulcio.{self.name}.test",
                    "certChain": {"certificates": [{"rawBytes": _b64(self.fulcio_root.public_bytes(der))}]},
                    "validFor": {"start": _rfc3339(self.created)},
                }
            ],
            "ctlogs": [self._log_instance(f"ctfe.{self.name}.test", self.ct_key.public_key())],
            "timestampAuthorities": [
                {
                    "subject": subject,
                    "uri": f"https://tsa.{self.name}.test",
                    "certChain": {
                        "certificates": [
                            {"rawBytes": _b64(self.tsa.leaf.public_bytes(der))},
                            {"rawBytes": _b64(self.tsa.root.public_bytes(der))},
                        ]
                    },
                    "validFor": {"start": _rfc3339(self.created)},
                }
            ],
        }

    def signing_config(self, variant: str) -> dict[str, Any]:
        """SigningConfig v0.2 pointing sigstore-python's signer at this server for ``variant``."""
        rekor_version, with_tsa = VARIANTS[variant]
        valid = {"start": "2020-01-01T00:00:00Z"}
        op = f"{self.name}.test"
        return {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [{"url": self.url, "majorApiVersion": 1, "validFor": valid, "operator": op}],
            "oidcUrls": [
                {"url": f"{self.url}/oidc", "majorApiVersion": 1, "validFor": valid, "operator": op}
            ],
            "rekorTlogUrls": [
                {"url": self.url, "majorApiVersion": rekor_version, "validFor": valid, "operator": op}
            ],
            "tsaUrls": (
                [
                    {
                        "url": f"{self.url}/api/v1/timestamp",
                        "majorApiVersion": 1,
                        "validFor": valid,
                        "operator": op,
                    }
                ]
                if with_tsa
                else []
            ),
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }

    def trust_config(self, variant: str) -> dict[str, Any]:
        """ClientTrustConfig v0.1 JSON: what ``--trust-config`` takes."""
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": self.trusted_root(),
            "signingConfig": self.signing_config(variant),
        }

    def write(self, directory: Path) -> dict[str, Path]:
        """Write ``trusted_root.json`` and one ``trust_config.<variant>.json`` per variant."""
        directory.mkdir(parents=True, exist_ok=True)
        out = {"trusted_root": directory / "trusted_root.json"}
        out["trusted_root"].write_text(json.dumps(self.trusted_root(), indent=2))
        for variant in VARIANTS:
            path = directory / f"trust_config.{variant}.json"
            path.write_text(json.dumps(self.trust_config(variant), indent=2))
            out[variant] = path
        return out

    def actions_env(self) -> dict[str, str]:
        """Environment variables a GitHub Actions job with ``id-token: write`` would have."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/github/oidc-token?job=1",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.actions_request_token,
        }

    # -- request dispatch (called from server threads) -------------------------------------------
    def handle_get(self, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """The GitHub Actions OIDC token endpoint (``ACTIONS_ID_TOKEN_REQUEST_URL``)."""
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(path)
        if url.path != "/github/oidc-token":
            return 404, "application/json", b'{"message": "not found"}'
        if headers.get("authorization", "").lower() != f"bearer {self.actions_request_token}":
            return 403, "application/json", b'{"message": "bad request token"}'
        audience = parse_qs(url.query).get("audience", ["sigstore"])[0]
        token = self.mint_token(self.actions_workflow, audience=audience)
        return 200, "application/json", json.dumps({"value": token}).encode()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """Route one POST; returns (status, content type, body). Logs are serialised by a lock."""
        try:
            if path == "/api/v2/signingCert":
                token = headers.get("authorization", "").removeprefix("Bearer ").strip()
                csr = base64.b64decode(json.loads(body)["certificateSigningRequest"])
                chain = self.issue_certificate(token, csr)
                doc = {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}
                return 201, "application/json", json.dumps(doc).encode()
            if path == "/api/v1/log/entries":
                with self._lock:
                    entry = self.rekor1.add_dsse_v1(json.loads(body))
                return 201, "application/json", json.dumps(entry).encode()
            if path == "/api/v2/log/entries":
                with self._lock:
                    entry = self.rekor2.add_hashedrekord_v2(json.loads(body))
                return 201, "application/json", json.dumps(entry).encode()
            if path == "/api/v1/timestamp":
                with self._lock:
                    response = self.tsa.respond(body)
                return 200, "application/timestamp-reply", response
        except (jwt.PyJWTError, RejectedEntry, ValueError, KeyError) as exc:
            return 400, "application/json", json.dumps({"code": 400, "message": str(exc)}).encode()
        return 404, "application/json", b'{"code": 404, "message": "not found"}'


def _handler_for(domain: SigstoreDomain) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._reply(*domain.handle(self.path, headers, body))

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            self._reply(*domain.handle_get(self.path, headers))

        def _reply(self, status: int, ctype: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output stays readable."""

    return Handler
