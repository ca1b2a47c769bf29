"""Constitution canonical form, digests, section proofs and the binding predicate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from attest._internal import merkle
from attest.constitution import (
    binding_predicate,
    canonicalize,
    digest_text,
    prove_section,
    split_sections,
    verify_section_proof,
)
from attest.errors import SchemaError, UsageError, VerificationError
from attest.predicates import CONSTITUTION_BINDING_V1, validate_predicate
from tests.core_fixtures import RunAttest

TEXT = (
    "# Constitution\n\nPreface that is not official.\n\n## Honesty\nSay “true” things — always.\n\n"
    "## Care\nCafé for everyone.\n\n### Detail\nstill Care\n\n## Safety\nNo harm.\n"
).encode()


def test_vectors_match_implementation(constitution_vectors: dict[str, Any]) -> None:
    for vector in constitution_vectors["vectors"]:
        raw = bytes.fromhex(vector["inputHex"])
        result = digest_text(raw)
        assert result.canonical == vector["canonical"], vector["name"]
        assert result.raw_sha256 == hashlib.sha256(raw).hexdigest() == vector["rawSha256"]
        assert result.canonical_sha256 == hashlib.sha256(vector["canonical"].encode()).hexdigest()
        assert result.canonical_sha256 == vector["canonicalSha256"], vector["name"]
        assert result.section_root == vector["sectionRoot"], vector["name"]
        assert [s.heading for s in result.sections] == vector["sectionHeadings"]


def test_equivalent_texts_share_digests_and_real_changes_do_not(constitution_vectors: dict[str, Any]) -> None:
    by_name = {v["name"]: v for v in constitution_vectors["vectors"]}
    equivalent = constitution_vectors["equivalentTo"]["base"]
    for name in (
        "crlf",
        "bom",
        "nfd",
        "zero-width",
        "no-break-spaces",
        "trailing-blanks",
        "multiple-blank-lines",
        "unicode-line-separators",
        "inner-space-runs",
    ):
        assert name in equivalent
    base = by_name["base"]
    for name, vector in by_name.items():
        same = name in equivalent
        assert (vector["canonicalSha256"] == base["canonicalSha256"]) is same, name
        if name != "base":
            assert vector["rawSha256"] != base["rawSha256"], name  # the raw bytes did differ
    for name in (
        "changed-word",
        "ascii-quotes-instead-of-typographic",
        "hyphen-instead-of-em-dash",
        "nfkc-would-change-ligature",
        "paragraph-split",
    ):
        assert by_name[name]["canonicalSha256"] != base["canonicalSha256"]
        assert by_name[name]["sectionRoot"] != base["sectionRoot"]


def test_invalid_utf8_is_rejected(constitution_vectors: dict[str, Any]) -> None:
    for vector in constitution_vectors["invalid"]:
        with pytest.raises(UsageError, match="not valid UTF-8"):
            canonicalize(bytes.fromhex(vector["inputHex"]))


def test_canonical_form_is_idempotent(constitution_vectors: dict[str, Any]) -> None:
    for vector in constitution_vectors["vectors"]:
        once = canonicalize(bytes.fromhex(vector["inputHex"]))
        assert canonicalize(once.encode()) == once


def test_zero_width_joiner_does_not_block_nfc() -> None:
    assert canonicalize("Cafe\u200d\u0301\n".encode()) == "Café\n"


def test_sections_cover_the_text_and_split_at_repeated_level() -> None:
    canonical = canonicalize(TEXT)
    sections = split_sections(canonical)
    assert "".join(s.text for s in sections) == canonical
    assert [s.heading for s in sections] == ["", "## Honesty", "## Care", "## Safety"]
    assert sections[0].text.startswith("# Constitution\n")  # single title falls into the preamble
    assert "### Detail" in sections[2].text


def test_no_preamble_when_text_starts_with_heading_and_single_section_without_headings() -> None:
    assert [s.heading for s in split_sections("## A\nx\n## B\ny\n")] == ["## A", "## B"]
    assert len(split_sections("plain text\n")) == 1
    assert [s.heading for s in split_sections("# Only\ntext\n")] == ["# Only"]
    # '#hashtag' and an indented '#' are not headings
    assert len(split_sections("## A\n#hashtag\n ## indented\n")) == 1


def test_section_root_is_rfc6962_over_section_bytes() -> None:
    result = digest_text(TEXT)
    leaves = [hashlib.sha256(b"\x00" + s.text.encode()).digest() for s in result.sections]

    # independent recomputation for 4 leaves: ((0,1),(2,3))
    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    assert result.section_root == node(node(leaves[0], leaves[1]), node(leaves[2], leaves[3])).hex()


def test_section_proof_verifies_for_every_section() -> None:
    result = digest_text(TEXT)
    for index in range(result.section_count):
        proof = prove_section(TEXT, index)
        verify_section_proof(json.loads(json.dumps(proof)), result.section_root)


def test_section_proof_fails_for_changed_section_and_wrong_root() -> None:
    result = digest_text(TEXT)
    proof = prove_section(TEXT, 1)
    tampered = dict(proof, text=proof["text"].replace("always", "sometimes"))
    with pytest.raises(VerificationError):
        verify_section_proof(tampered, result.section_root)
    moved = dict(proof, index=2)
    with pytest.raises(VerificationError):
        verify_section_proof(moved, result.section_root)
    other = digest_text(TEXT.replace(b"No harm.", b"Some harm."))
    with pytest.raises(VerificationError):
        verify_section_proof(proof, other.section_root)
    bad_path = dict(proof, proof=[*proof["proof"][:-1], "00" * 32])
    with pytest.raises(VerificationError):
        verify_section_proof(bad_path, result.section_root)
    with pytest.raises(VerificationError, match="malformed"):
        verify_section_proof({"text": "x"}, result.section_root)


def test_changing_one_section_changes_only_its_leaf() -> None:
    before = digest_text(TEXT)
    after = digest_text(TEXT.replace(b"No harm.", b"Some harm."))
    assert before.section_root != after.section_root
    changed = [i for i in range(4) if before.sections[i].leaf_hash != after.sections[i].leaf_hash]
    assert changed == [3]
    assert merkle.leaf_hash(after.sections[3].data) == after.sections[3].leaf_hash


def test_prove_unknown_section_is_usage_error() -> None:
    with pytest.raises(UsageError, match="section 9 does not exist"):
        prove_section(TEXT, 9)


def test_binding_predicate_validates_and_carries_digests() -> None:
    predicate = binding_predicate(
        TEXT,
        name="claude-constitution",
        version="2026-01-21",
        relationship="trained-with",
        uri="https://www.anthropic.com/constitution",
        license="CC0-1.0",
    )
    validate_predicate(CONSTITUTION_BINDING_V1, predicate)
    result = digest_text(TEXT)
    assert predicate["constitution"]["canonicalDigest"]["sha256"] == result.canonical_sha256
    assert predicate["constitution"]["sectionRoot"]["sha256"] == result.section_root
    assert predicate["constitution"]["sectionCount"] == 4
    assert predicate["relationship"] == "trained-with"
    with pytest.raises(UsageError, match="relationship"):
        binding_predicate(TEXT, name="x", version="1", relationship="inspired-by")
    broken = json.loads(json.dumps(predicate))
    broken["constitution"]["canonicalDigest"]["sha256"] = "XYZ"
    with pytest.raises(SchemaError):
        validate_predicate(CONSTITUTION_BINDING_V1, broken)


def test_cli_digest_prove_verify_bind(run_attest: RunAttest, tmp_path: Path) -> None:
    text = tmp_path / "constitution.md"
    text.write_bytes(TEXT.replace(b"\n", b"\r\n"))
    out = run_attest("constitution", "digest", str(text), "--json")
    assert out.returncode == 0, out.stderr
    digests = json.loads(out.stdout)
    assert digests["canonicalDigest"]["sha256"] == digest_text(TEXT).canonical_sha256
    proof_file = tmp_path / "proof.json"
    out = run_attest("constitution", "prove", str(text), "--section", "2", "-o", str(proof_file))
    assert out.returncode == 0, out.stderr
    root = digests["sectionRoot"]["sha256"]
    ok = run_attest("constitution", "verify-proof", str(proof_file), "--root", root, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["verified"] is True
    proof = json.loads(proof_file.read_text())
    proof["text"] = proof["text"].replace("Café", "Cafe")
    proof_file.write_text(json.dumps(proof))
    bad = run_attest("constitution", "verify-proof", str(proof_file), "--root", root)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    model = tmp_path / "model"
    model.mkdir()
    pred = tmp_path / "binding.json"
    out = run_attest(
        "constitution",
        "bind",
        str(model),
        str(text),
        "--relationship",
        "system-prompt",
        "--version",
        "1",
        "-o",
        str(pred),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(pred.read_text())["relationship"] == "system-prompt"
    missing = run_attest("constitution", "digest", str(tmp_path / "nope.md"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    nosection = run_attest("constitution", "prove", str(text), "--section", "7")
    assert nosection.returncode == 2 and "does not exist" in nosection.stderr
