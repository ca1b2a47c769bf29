"""An RFC 3161 timestamp authority built with asn1crypto (rfc3161-client can only request/verify)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as ax509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.sigstore_domain import pki

POLICY_OID = "1.3.6.1.4.1.57264.2"


class TimestampAuthority:
    """Signs TSTInfo structures for ``TimeStampReq`` DER bodies with its own two-certificate chain."""

    def __init__(self, name: str, start: dt.datetime) -> None:
        self.root_key = pki.new_key()
        self.root = pki.make_root(f"{name} TSA root", "model-attest tests", self.root_key, start)
        self.key: ec.EllipticCurvePrivateKey = pki.new_key()
        self.leaf: x509.Certificate = pki.make_tsa_leaf(self.root, self.root_key, self.key)
        self._serials = itertools.count(1)

    def respond(self, request_der: bytes) -> bytes:
        """Answer a DER ``TimeStampReq`` with a granted DER ``TimeStampResp``."""
        request = tsp.TimeStampReq.load(request_der)
        return self._response(request["message_imprint"], request["nonce"].native)

    def timestamp(self, message: bytes) -> bytes:
        """Timestamp ``message`` directly (used by tests to forge foreign tokens)."""
        imprint = tsp.MessageImprint(
            {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(message).digest()}
        )
        return self._response(imprint, None)

    def _response(self, imprint: tsp.MessageImprint, nonce: int | None) -> bytes:
        info: dict[str, object] = {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": imprint,
            "serial_number": next(self._serials),
            "gen_time": dt.datetime.now(dt.UTC).replace(microsecond=0),
        }
        if nonce is not None:
            info["nonce"] = nonce
        tst_info = tsp.TSTInfo(info)
        tst_der = tst_info.dump()
        leaf = ax509.Certificate.load(self.leaf.public_bytes(serialization.Encoding.DER))
        attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]},
                {
                    "type": "signing_certificate_v2",
                    "values": [{"certs": [{"cert_hash": hashlib.sha256(leaf.dump()).digest()}]}],
                },
            ]
        )
        signature = pki.sign(self.key, attrs.dump())
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": leaf.issuer,
                            "serial_number": leaf.serial_number,
                        }
                    }
                ),
                "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                "signed_attrs": attrs,
                "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
                "signature": signature,
            }
        )
        signed_data = cms.SignedData(
            {
                "version": "v3",
                "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
                "encap_content_info": {
                    "content_type": "tst_info",
                    "content": core.ParsableOctetString(tst_der),
                },
                "certificates": [leaf],
                "signer_infos": [signer],
            }
        )
        response = tsp.TimeStampResp(
            {
                "status": {"status": "granted"},
                "time_stamp_token": {"content_type": "signed_data", "content": signed_data},
            }
        )
        return bytes(response.dump())
