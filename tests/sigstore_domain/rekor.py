"""Rekor v1 and v2 style transparency logs: append an entry, answer with proof and signed checkpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from attest._internal import merkle
from tests.sigstore_domain import pki


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


class RejectedEntry(ValueError):
    """The proposed entry is malformed or its signature does not verify (HTTP 400)."""


class TransparencyLog:
    """One append-only Merkle log with an ECDSA key; ``name`` is the checkpoint signer and origin."""

    def __init__(self, name: str, origin: str) -> None:
        self.name = name
        self.origin = origin
        self.key = pki.new_key()
        self.log_id = pki.key_id(self.key.public_key())
        self.leaves: list[bytes] = []

    def _append(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Append ``body`` and return its index with an inclusion proof against a fresh checkpoint."""
        self.leaves.append(merkle.leaf_hash(body))
        index = len(self.leaves) - 1
        size = len(self.leaves)
        root_hash = merkle.root_from_leaf_hashes(self.leaves)
        note = f"{self.origin}\n{size}\n{_b64(root_hash)}\n"
        signature = pki.sign(self.key, note.encode())
        checkpoint = f"{note}\n\u2014 {self.name} {_b64(self.log_id[:4] + signature)}\n"
        proof = {
            "index": index,
            "size": size,
            "root": root_hash,
            "hashes": merkle.inclusion_proof(index, self.leaves),
            "checkpoint": checkpoint,
        }
        return index, proof

    def add_dsse_v1(self, request: dict[str, Any]) -> dict[str, Any]:
        """Rekor v1 ``POST /api/v1/log/entries`` for a ``dsse`` 0.0.1 proposal; returns {uuid: entry}."""
        try:
            if request["kind"] != "dsse" or request["apiVersion"] != "0.0.1":
                raise RejectedEntry("only dsse 0.0.1 is accepted")
            proposed = request["spec"]["proposedContent"]
            envelope_text: str = proposed["envelope"]
            envelope = json.loads(envelope_text)
            verifier_b64: str = proposed["verifiers"][0]
            cert = x509.load_pem_x509_certificate(base64.b64decode(verifier_b64))
            payload = base64.b64decode(envelope["payload"])
            sig = base64.b64decode(envelope["signatures"][0]["sig"])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise RejectedEntry(f"malformed dsse proposal: {exc}") from exc
        _verify(cert, sig, pae(envelope["payloadType"], payload))
        body = rfc8785.dumps(
            {
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {
                    "envelopeHash": {
                        "algorithm": "sha256",
                        "value": hashlib.sha256(envelope_text.encode()).hexdigest(),
                    },
                    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
                    "signatures": [{"signature": _b64(sig), "verifier": verifier_b64}],
                },
            }
        )
        index, proof = self._append(body)
        integrated_time = int(time.time())
        set_payload = rfc8785.dumps(
            {
                "body": _b64(body),
                "integratedTime": integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )
        entry = {
            "body": _b64(body),
            "integratedTime": integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": proof["checkpoint"],
                    "hashes": [h.hex() for h in proof["hashes"]],
                    "logIndex": index,
                    "rootHash": proof["root"].hex(),
                    "treeSize": proof["size"],
                },
                "signedEntryTimestamp": _b64(pki.sign(self.key, set_payload)),
            },
        }
        return {merkle.leaf_hash(body).hex(): entry}

    def add_hashedrekord_v2(self, request: dict[str, Any]) -> dict[str, Any]:
        """Rekor v2 ``POST /api/v2/log/entries`` (hashedrekord 0.0.2); returns a TransparencyLogEntry."""
        try:
            proposal = request["hashedRekordRequestV002"]
            digest = base64.b64decode(proposal["digest"])
            signature = proposal["signature"]
            sig = base64.b64decode(signature["content"])
            verifier = signature["verifier"]
            cert = x509.load_der_x509_certificate(base64.b64decode(verifier["x509Certificate"]["rawBytes"]))
            key_details = verifier["keyDetails"]
        except (KeyError, TypeError, ValueError) as exc:
            raise RejectedEntry(f"malformed hashedrekord proposal: {exc}") from exc
        _verify(cert, sig, digest, prehashed=True)
        body = json.dumps(
            {
                "kind": "hashedrekord",
                "apiVersion": "0.0.2",
                "spec": {
                    "hashedRekordV002": {
                        "data": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                        "signature": {
                            "content": _b64(sig),
                            "verifier": {
                                "x509Certificate": {
                                    "rawBytes": _b64(cert.public_bytes(serialization.Encoding.DER))
                                },
                                "keyDetails": key_details,
                            },
                        },
                    }
                },
            },
            separators=(",", ":"),
        ).encode()
        index, proof = self._append(body)
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(proof["root"]),
                "treeSize": str(proof["size"]),
                "hashes": [_b64(h) for h in proof["hashes"]],
                "checkpoint": {"envelope": proof["checkpoint"]},
            },
            "canonicalizedBody": _b64(body),
        }


def _verify(cert: x509.Certificate, sig: bytes, data: bytes, *, prehashed: bool = False) -> None:
    """A log only admits entries whose signature verifies under the submitted certificate."""
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise RejectedEntry("only ECDSA certificates are accepted")
    algorithm: Any = utils.Prehashed(hashes.SHA256()) if prehashed else hashes.SHA256()
    try:
        key.verify(sig, data, ec.ECDSA(algorithm))
    except Exception as exc:
        raise RejectedEntry("signature does not verify") from exc
