"""C2SP signed-note checkpoints: published vectors, round trips and every rejection rule."""

from __future__ import annotations

import base64

import pytest

from attest.checkpoint import (
    Checkpoint,
    NoteVerifier,
    generate_signer,
    open_note,
    sign_checkpoint,
    verify_checkpoint,
    verify_note,
)
from attest.errors import KeyMaterialError, VerificationError

# Published vectors: the example of https://c2sp.org/signed-note and the Go checksum database key.
C2SP_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHj"
    "G1Yu72IneyaQM=\n"
)
SUMDB_KEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

ROOT = bytes(range(32))


def test_published_vectors() -> None:
    foo = NoteVerifier.from_vkey(C2SP_KEY)
    assert foo.vkey() == C2SP_KEY
    text, names = verify_note(C2SP_NOTE, [foo])
    assert text == "This is an example message.\n" and names == ["example.com/foo"]
    tampered = C2SP_NOTE.replace("example message", "exemple message")
    with pytest.raises(VerificationError, match="invalid"):
        verify_note(tampered, [foo])
    sumdb = NoteVerifier.from_vkey(SUMDB_KEY)
    assert sumdb.key_id.hex() == "033de0ae" and sumdb.vkey() == SUMDB_KEY


def test_vkey_with_wrong_id_is_rejected() -> None:
    with pytest.raises(KeyMaterialError):
        NoteVerifier.from_vkey(C2SP_KEY.replace("530d903a", "530d903b"))
    with pytest.raises(KeyMaterialError):
        NoteVerifier.from_vkey("no-plus-signs")


def test_round_trip_and_exact_format() -> None:
    signer = generate_signer("registry.example/log")
    note = sign_checkpoint(Checkpoint("registry.example/log", 7, ROOT), [signer])
    lines = note.split("\n")
    assert lines[:4] == ["registry.example/log", "7", base64.b64encode(ROOT).decode(), ""]
    assert lines[4].startswith("\u2014 registry.example/log ")
    cp = verify_checkpoint(note, [signer.verifier], origin="registry.example/log")
    assert (cp.origin, cp.size, cp.root_hash) == ("registry.example/log", 7, ROOT)
    with pytest.raises(VerificationError, match="origin"):
        verify_checkpoint(note, [signer.verifier], origin="other.example/log")


def test_unknown_keys_ignored_known_bad_rejected() -> None:
    log, witness, stranger = (generate_signer(n) for n in ("log", "witness", "stranger"))
    note = sign_checkpoint(Checkpoint("log", 3, ROOT), [stranger, log, witness])
    cp, names = open_note(note, [log.verifier, witness.verifier])
    assert cp.size == 3 and names == ["log", "witness"]
    # only unknown signers -> reject
    with pytest.raises(VerificationError, match="not signed by any trusted"):
        open_note(note, [generate_signer("log").verifier])
    # a known key's signature over a different body -> reject even though another known key is valid
    other = sign_checkpoint(Checkpoint("log", 4, ROOT), [witness])
    forged = (
        note.split("\n\n")[0] + "\n\n" + note.split("\n\n")[1].split("\n")[1] + "\n" + other.split("\n\n")[1]
    )
    with pytest.raises(VerificationError, match="witness"):
        open_note(forged, [log.verifier, witness.verifier])


def test_tampered_body_fields_rejected() -> None:
    signer = generate_signer("log")
    note = sign_checkpoint(Checkpoint("log", 12, ROOT), [signer])
    for bad in (note.replace("\n12\n", "\n13\n"), note.replace("log\n12", "lag\n12")):
        with pytest.raises(VerificationError):
            verify_checkpoint(bad, [signer.verifier])


@pytest.mark.parametrize(
    "body",
    ["log\n012\n", "log\n-1\n", "log\nten\n", "log\n１\n", "\n1\nAAAA\n", "log\n1\nAAAA\n"],
)
def test_malformed_bodies_rejected_even_when_signed(body: str) -> None:
    signer = generate_signer("log")
    if body.count("\n") == 2:
        body += base64.b64encode(ROOT).decode() + "\n"
    note = body + "\n" + signer.sign_line(body.encode())
    with pytest.raises(VerificationError):
        verify_checkpoint(note, [signer.verifier])


def test_signature_block_rules() -> None:
    signer = generate_signer("log")
    note = sign_checkpoint(Checkpoint("log", 1, ROOT), [signer])
    body, sigs = note.split("\n\n")
    many = body + "\n\n" + "".join(generate_signer(f"k{i}").sign_line(b"x") for i in range(15)) + sigs
    assert verify_checkpoint(many, [signer.verifier]).size == 1  # 16 lines are accepted
    too_many = body + "\n\n" + "".join(generate_signer(f"k{i}").sign_line(b"x") for i in range(16)) + sigs
    with pytest.raises(VerificationError, match="more than 16"):
        verify_checkpoint(too_many, [signer.verifier])
    for bad in (body + "\n", body + "\n\n", note.replace("\u2014", "-"), note + "junk\n", note.rstrip("\n")):
        with pytest.raises(VerificationError):
            verify_checkpoint(bad, [signer.verifier])
