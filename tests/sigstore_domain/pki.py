"""Keys and certificates of the local trust domain: CA roots, leaf certificates, embedded SCTs.

``cryptography`` cannot build SCT objects, so the SCT list is encoded by hand (RFC 6962 section 3.2)
and attached as an unrecognised extension; ``cryptography`` then parses it back as a real
``PrecertificateSignedCertificateTimestamps`` extension, which is what sigstore-python checks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

SCT_LIST_OID = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
OIDC_ISSUER_V1_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OIDC_ISSUER_V2_OID = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 key (what every Sigstore service here signs with)."""
    return ec.generate_private_key(ec.SECP256R1())


def spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    """DER SubjectPublicKeyInfo, the form trusted roots carry and log IDs hash."""
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(key: ec.EllipticCurvePublicKey) -> bytes:
    """Sigstore log ID / key ID: SHA-256 of the DER SPKI."""
    return hashlib.sha256(spki_der(key)).digest()


def sign(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-SHA256 DER signature."""
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_root(
    common_name: str, org: str, key: ec.EllipticCurvePrivateKey, start: dt.datetime
) -> x509.Certificate:
    """A self-signed CA root valid for ten years from ``start``."""
    name = _name(common_name, org)
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .sign(key, hashes.SHA256())
    )


def _digital_signature_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def make_tsa_leaf(
    root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    """The TSA signing certificate: critical timeStamping EKU, as RFC 3161 verifiers demand."""
    pub = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name("local-tsa", "model-attest tests"))
        .issuer_name(root.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(root.not_valid_before_utc)
        .not_valid_after(root.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_digital_signature_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _sct_list(
    tbs: bytes, issuer: ec.EllipticCurvePublicKey, ct_key: ec.EllipticCurvePrivateKey, when_ms: int
) -> bytes:
    """TLS-encoded SignedCertificateTimestampList holding one v1 precert SCT over ``tbs``."""
    issuer_key_hash = hashlib.sha256(spki_der(issuer)).digest()
    signed = (
        b"\x00\x00"  # version v1, signature_type certificate_timestamp
        + struct.pack(">Q", when_ms)
        + b"\x00\x01"  # entry_type precert_entry
        + issuer_key_hash
        + len(tbs).to_bytes(3, "big")
        + tbs
        + b"\x00\x00"  # no extensions
    )
    signature = sign(ct_key, signed)
    sct = (
        b"\x00"
        + key_id(ct_key.public_key())
        + struct.pack(">Q", when_ms)
        + b"\x00\x00"
        + b"\x04\x03"  # sha256, ecdsa
        + struct.pack(">H", len(signature))
        + signature
    )
    return struct.pack(">H", len(sct) + 2) + struct.pack(">H", len(sct)) + sct


def make_fulcio_leaf(
    *,
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    ct_key: ec.EllipticCurvePrivateKey,
    public_key: ec.EllipticCurvePublicKey,
    san: x509.GeneralName,
    issuer_url: str,
    now: dt.datetime,
    lifetime: dt.timedelta = dt.timedelta(minutes=10),
) -> x509.Certificate:
    """A Fulcio-style short-lived code-signing certificate with one embedded SCT.

    Built twice with the same serial and validity: first without the SCT (its TBS is the precert TBS
    the CT log signs), then with the SCT list appended as the last extension, which is exactly what
    a verifier strips back off to recompute the precert TBS.
    """
    serial = x509.random_serial_number()
    issuer_v2 = b"\x0c" + _der_length(len(issuer_url.encode())) + issuer_url.encode()

    def builder() -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(root.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now)
            .not_valid_after(now + lifetime)
            .add_extension(_digital_signature_usage(), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([san]), critical=True)
            .add_extension(
                x509.UnrecognizedExtension(OIDC_ISSUER_V1_OID, issuer_url.encode()), critical=False
            )
            .add_extension(x509.UnrecognizedExtension(OIDC_ISSUER_V2_OID, issuer_v2), critical=False)
        )

    precert = builder().sign(root_key, hashes.SHA256())
    sct_list = _sct_list(
        precert.tbs_certificate_bytes, root_key.public_key(), ct_key, int(now.timestamp() * 1000)
    )
    octet = b"\x04" + _der_length(len(sct_list)) + sct_list
    return (
        builder()
        .add_extension(x509.UnrecognizedExtension(SCT_LIST_OID, octet), critical=False)
        .sign(root_key, hashes.SHA256())
    )
