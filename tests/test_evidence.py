"""The one evidence rule, tried as an attacker would (issue 12 points 1-3, issue 16 point 3).

Every bundle here is really signed (ECDSA P-256 keys made per test) and really verified; the model is a
real folder that is really hashed. Each attack is run through ``verify_model`` (``attest verify``, the
guard) and through ``attest.pull.decide`` (``attest pull``): the same bundles must get the same answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attest._internal.walk import DEFAULT_IGNORES
from attest.errors import PolicyError, UsageError
from attest.evidence import BundleInput, collect_evidence
from attest.keys import fingerprint, generate_private_key
from attest.manifest import Manifest, compute_manifest
from attest.model_verification import verify_model
from attest.policy import Decision, Policy
from attest.predicates import MODEL_MANIFEST_V1, REVOCATION_V1, VERIFICATION_SUMMARY_V1
from attest.pull import decide as pull_decide
from attest.signing import KeySigner, manifest_predicate, sign_attestation
from attest.statement import build_statement
from attest.verifying import Trust
from tests.core_fixtures import make_model

NAME = "org/tiny"
VERSION = "1.0"
NOW = datetime(2026, 11, 28, tzinfo=UTC)
SERVER_POLICY = "ab" * 32  # the digest a registry's named policy "acme-prod" hashes to


@dataclass
class World:
    """A model, people with keys, and a trust that knows every key (as ``--key`` flags would)."""

    model: Path
    manifest: Manifest
    signers: dict[str, KeySigner] = field(default_factory=dict)
    trust: Trust = field(default_factory=Trust)

    def signer(self, who: str) -> KeySigner:
        if who not in self.signers:
            self.signers[who] = KeySigner(generate_private_key())
            if who != "unknown":  # "unknown": a key no one was told about
                self.trust.add_key(self.signers[who].public_key)
        return self.signers[who]

    def fp(self, who: str) -> str:
        return fingerprint(self.signer(who).public_key)

    def bundle(
        self, who: str, name: str, predicate_type: str = MODEL_MANIFEST_V1, predicate: Any = None
    ) -> BundleInput:
        doc = sign_attestation(
            self.signer(who), self.manifest, NAME, predicate_type, predicate, version=VERSION
        )
        return BundleInput(name, json.dumps(doc).encode())

    def policy(self, roles: dict[str, list[str]], require: list[dict[str, Any]]) -> Policy:
        signers = {role: [{"key": self.fp(who)} for who in members] for role, members in roles.items()}
        doc = {"apiVersion": "model-attest.dev/policy/v1", "signers": signers, "require": require}
        return Policy.from_document(doc)

    def verify(self, bundles: list[BundleInput], policy: Policy) -> Decision:
        return verify_model(self.model, bundles, self.trust, policy, now=NOW)

    def pull(self, bundles: list[BundleInput], policy: Policy) -> Decision:
        pairs = [(b.name, b.raw()) for b in bundles]
        return pull_decide(pairs, NAME, VERSION, policy, policy.trust(self.trust)).decision


@pytest.fixture
def world(tmp_path: Path) -> World:
    model = make_model(tmp_path / "tiny")
    return World(model, compute_manifest(model))


MANIFEST_BY_PUBLISHER = [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher"]}]


def rejected(decision: Decision) -> dict[str, str]:
    return {r.bundle: r.code for r in decision.rejected}


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def revocation(digest: str) -> dict[str, str]:
    return {"revokedDigest": digest, "reason": "weights leaked", "revokedOn": "2026-11-20T00:00:00Z"}


# ---- 1. one evidence rule ----------------------------------------------------------------------------
def test_foreign_bundles_neither_satisfy_nor_deny_and_verify_and_pull_agree(world: World) -> None:
    """Junk, an unknown key's bundle, and a stranger's validly signed statements about the model's
    digest are reported and ignored; before the change ``verify_model`` denied on them."""
    policy = world.policy({"publisher": ["publisher"]}, MANIFEST_BY_PUBLISHER)
    bogus_files = manifest_predicate(world.manifest, NAME, VERSION)
    bogus_files["files"] = bogus_files["files"][:1]  # a stranger "signs" a manifest that would not match
    bundles = [
        BundleInput("junk.json", b"\x00not a bundle"),
        world.bundle("unknown", "unknown-key.json"),
        world.bundle("stranger", "stranger-manifest.json", MODEL_MANIFEST_V1, bogus_files),
        world.bundle(
            "stranger", "stranger-revocation.json", REVOCATION_V1, revocation(world.manifest.digest)
        ),
        world.bundle("publisher", "publisher.json"),
    ]
    expected = {
        "junk.json": "BUNDLE_UNVERIFIED",
        "unknown-key.json": "BUNDLE_UNVERIFIED",
        "stranger-manifest.json": "UNTRUSTED_SIGNER",
        "stranger-revocation.json": "UNTRUSTED_SIGNER",
    }
    for decision in (world.verify(bundles, policy), world.pull(bundles, policy)):
        assert decision.allowed and decision.reasons == []
        assert rejected(decision) == expected
        assert [e["signer"]["keyFingerprint"] for e in decision.evidence] == [world.fp("publisher")]
        out = decision.to_json()
        assert {r["bundle"] for r in out["rejected"]} == set(expected) and "fileChanges" not in out
        assert len(out["warnings"]) == 4 and all(w.startswith("ignored ") for w in out["warnings"])
    # without the publisher's manifest the same foreign material leaves the requirement unmet
    alone = world.verify(bundles[:-1], policy)
    assert not alone.allowed and codes(alone) == ["MISSING_ATTESTATION"]


def test_the_guard_loads_despite_junk_beside_the_model_and_refuses_tampering(
    world: World, tmp_path: Path
) -> None:
    """The guard verifies every ``*.sigstore.json`` in the folder: a planted one must not block a load."""
    import shutil

    from attest.guard import GuardConfig, ModelRefused, verify_snapshot

    policy = world.policy({"publisher": ["publisher"]}, MANIFEST_BY_PUBLISHER)
    (world.model / "manifest.sigstore.json").write_bytes(world.bundle("publisher", "m").raw())
    (world.model / "planted.sigstore.json").write_bytes(world.bundle("stranger", "s").raw())
    (world.model / "junk.sigstore.json").write_text("{}")
    config = GuardConfig(policy, world.trust)
    (tmp_path / "snaps").mkdir()
    copy, decision = verify_snapshot(world.model, config, into=tmp_path / "snaps")
    assert decision.allowed and sorted(rejected(decision).values()) == [
        "BUNDLE_UNVERIFIED",
        "UNTRUSTED_SIGNER",
    ]
    shutil.rmtree(copy.parent)
    (world.model / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelRefused, match=r"MODEL_FILES_CHANGED.*tokenizer\.json"):
        verify_snapshot(world.model, config, into=tmp_path / "snaps")


def test_pull_keeps_only_evidence_beside_the_files(world: World) -> None:
    policy = world.policy({"publisher": ["publisher"]}, MANIFEST_BY_PUBLISHER)
    good = world.bundle("publisher", "publisher.json")
    bundles = [BundleInput("junk.json", b"{}"), world.bundle("stranger", "s.json"), good]
    plan = pull_decide([(b.name, b.raw()) for b in bundles], NAME, VERSION, policy, policy.trust(world.trust))
    assert plan.bundles == [good.data]


def test_tampered_model_denied_with_the_file_names(world: World) -> None:
    policy = world.policy({"publisher": ["publisher"]}, MANIFEST_BY_PUBLISHER)
    bundles = [world.bundle("publisher", "publisher.json")]
    weights = world.model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x01")
    (world.model / "tokenizer.json").unlink()
    decision = world.verify(bundles, policy)
    assert not decision.allowed and codes(decision) == ["MODEL_FILES_CHANGED", "MISSING_ATTESTATION"]
    assert "model.safetensors" in decision.reasons[0].message
    assert decision.to_json()["fileChanges"] == {
        "changed": ["model.safetensors"],
        "missing": ["tokenizer.json"],
        "extra": [],
    }
    assert rejected(decision) == {"publisher.json": "MODEL_FILES_CHANGED"}


def test_manifest_from_a_role_not_trusted_for_manifests_cannot_hide_or_deny(world: World) -> None:
    """A scanner-role key signs a manifest that ignores the weights: its ignores are not applied, it
    is not evidence, and it does not turn the publisher's matching manifest into a denial."""
    policy = world.policy({"publisher": ["publisher"], "scanner": ["scanner"]}, MANIFEST_BY_PUBLISHER)
    sneaky = manifest_predicate(world.manifest, NAME, VERSION)
    sneaky["files"] = [f for f in sneaky["files"] if f["path"] != "model.safetensors"]
    sneaky["ignores"] = [*sneaky["ignores"], "*.safetensors"]
    bundles = [
        world.bundle("scanner", "scanner-manifest.json", MODEL_MANIFEST_V1, sneaky),
        world.bundle("publisher", "publisher.json"),
    ]
    trusted = collect_evidence(bundles, policy, world.trust)
    assert "*.safetensors" not in trusted.signed_ignores()
    decision = world.verify(bundles, policy)
    assert decision.allowed and rejected(decision) == {"scanner-manifest.json": "UNTRUSTED_SIGNER"}
    assert decision.details["files"] == 4  # the weights were hashed


def test_evidence_api_for_a_known_digest(world: World) -> None:
    """The shape other callers (admission, registry client) rely on: pairs in, narrowed evidence out."""
    policy = world.policy({"publisher": ["publisher"]}, MANIFEST_BY_PUBLISHER)
    other = "sha256:" + "00" * 32
    pairs = [("log entry 0", json.loads(world.bundle("publisher", "x").raw())), ("log entry 1", b"[]")]
    ev = collect_evidence(pairs, policy, world.trust, model_digest=world.manifest.digest)
    assert [a.predicate_type for a in ev.verified] == [MODEL_MANIFEST_V1]
    assert ev.decide(now=NOW).allowed and rejected(ev.decide(now=NOW)) == {"log entry 1": "BUNDLE_UNVERIFIED"}
    with pytest.raises(ValueError, match="narrowed to a model digest"):  # no digest, no decision
        collect_evidence(pairs, policy, world.trust).decide()
    elsewhere = collect_evidence(pairs, policy, world.trust, model_digest=other).decide(now=NOW)
    assert not elsewhere.allowed and rejected(elsewhere)["log entry 0"] == "SUBJECT_MISMATCH"


# ---- 2. revocation authority -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "revoker,revoked,code",
    [
        ("publisher", True, None),
        ("revoker", True, None),
        ("scanner", False, "REVOCATION_UNAUTHORIZED"),
        ("stranger", False, "UNTRUSTED_SIGNER"),
    ],
)
def test_only_the_manifest_roles_or_revokers_may_revoke(
    world: World, revoker: str, revoked: bool, code: str | None
) -> None:
    policy = world.policy(
        {"publisher": ["publisher"], "scanner": ["scanner"], "revokers": ["revoker"]}, MANIFEST_BY_PUBLISHER
    )
    bundles = [
        world.bundle("publisher", "publisher.json"),
        world.bundle(revoker, "revocation.json", REVOCATION_V1, revocation(world.manifest.digest)),
    ]
    for decision in (world.verify(bundles, policy), world.pull(bundles, policy)):
        assert decision.allowed is not revoked
        if revoked:
            assert codes(decision) == ["REVOKED"] and decision.rejected == []
        else:
            assert decision.reasons == [] and rejected(decision) == {"revocation.json": code}


# ---- 3. VSA pinning ------------------------------------------------------------------------------------
def vsa(
    result: str = "PASSED", policy_digest: str = SERVER_POLICY, when: str = "2026-11-27T00:00:00Z"
) -> dict[str, Any]:
    return {
        "verifier": {"id": "https://registry.example/admission"},
        "timeVerified": when,
        "resourceUri": f"model:{NAME}",
        "policy": {"uri": "acme-prod", "digest": {"sha256": policy_digest}},
        "inputAttestations": [{"uri": "https://registry.example#0", "digest": {"sha256": "cd" * 32}}],
        "verificationResult": result,
        "verifiedLevels": ["MODEL_ATTEST_POLICY_PASSED" if result == "PASSED" else "FAILED"],
    }


def vsa_policy(world: World, **pins: Any) -> Policy:
    return world.policy(
        {"registry": ["verifier"]},
        [{"predicateType": VERIFICATION_SUMMARY_V1, "signedBy": ["registry"], **pins}],
    )


@pytest.mark.parametrize(
    "pins,allowed",
    [
        ({"policyDigest": f"sha256:{SERVER_POLICY}"}, True),
        ({"policyUri": "acme-prod"}, True),
        ({"policyDigest": f"sha256:{SERVER_POLICY}", "policyUri": "acme-prod"}, True),
        ({"policyDigest": "sha256:" + "ef" * 32}, False),
        ({"policyUri": "someone-elses-policy"}, False),
        ({"policyDigest": f"sha256:{SERVER_POLICY}", "policyUri": "someone-elses-policy"}, False),
    ],
)
def test_a_vsa_counts_only_for_the_pinned_policy(world: World, pins: dict[str, str], allowed: bool) -> None:
    bundles = [world.bundle("verifier", "vsa.json", VERIFICATION_SUMMARY_V1, vsa())]
    decision = world.verify(bundles, vsa_policy(world, **pins))
    assert decision.allowed is allowed
    assert codes(decision) == ([] if allowed else ["VSA_POLICY_MISMATCH"])


def test_a_vsa_from_another_verifier_or_failed_does_not_count(world: World) -> None:
    policy = vsa_policy(world, policyDigest=f"sha256:{SERVER_POLICY}")
    forged = world.verify([world.bundle("stranger", "vsa.json", VERIFICATION_SUMMARY_V1, vsa())], policy)
    assert codes(forged) == ["MISSING_ATTESTATION"] and rejected(forged) == {"vsa.json": "UNTRUSTED_SIGNER"}
    failed = world.verify(
        [world.bundle("verifier", "v.json", VERIFICATION_SUMMARY_V1, vsa("FAILED"))], policy
    )
    assert codes(failed) == ["VSA_FAILED"]


@pytest.mark.parametrize(
    "require",
    [
        {"predicateType": VERIFICATION_SUMMARY_V1, "signedBy": ["registry"]},  # which policy?
        {"predicateType": VERIFICATION_SUMMARY_V1, "policyUri": "acme-prod"},  # which verifier?
    ],
)
def test_an_unpinned_vsa_requirement_is_a_policy_error(world: World, require: dict[str, Any]) -> None:
    with pytest.raises(PolicyError, match=r"require/0: a verification summary requirement must pin"):
        world.policy({"registry": ["verifier"]}, [require])


def test_far_future_vsa_date_is_refused_cleanly(world: World) -> None:
    """Year 9999 with a negative offset overflowed ``datetime`` (a traceback) under ``maxAgeDays``."""
    policy = vsa_policy(world, policyDigest=f"sha256:{SERVER_POLICY}", maxAgeDays=30)
    far = vsa(when="9999-12-31T23:30:00-05:00")
    # model-attest refuses to sign such a date; another tool (or an old release) may not have
    statement = build_statement(NAME, world.manifest.digest, VERIFICATION_SUMMARY_V1, far)
    signed = BundleInput("vsa.json", json.dumps(world.signer("verifier").sign_statement(statement)).encode())
    decision = world.verify([signed], policy)
    assert not decision.allowed and codes(decision) == ["ATTESTATION_UNDATED"]


# ---- 4. k-of-n -----------------------------------------------------------------------------------------
TWO_OF_TWO = [{"predicateType": MODEL_MANIFEST_V1, "signedBy": ["publisher", "auditor"], "threshold": 2}]


def test_threshold_needs_distinct_signers(world: World) -> None:
    policy = world.policy({"publisher": ["publisher"], "auditor": ["auditor"]}, TWO_OF_TWO)
    one = [world.bundle("publisher", "p.json")]
    same_key_twice = [*one, world.bundle("publisher", "p2.json")]
    both = [*one, world.bundle("auditor", "a.json")]
    for bundles, allowed in ((one, False), (same_key_twice, False), (both, True)):
        for decision in (world.verify(bundles, policy), world.pull(bundles, policy)):
            assert decision.allowed is allowed
            if not allowed:
                assert codes(decision) == ["THRESHOLD_NOT_MET"]
                assert (
                    "needs 2 distinct signers from publisher/auditor, found 1" in decision.reasons[0].message
                )
            else:
                assert {e["signer"]["keyFingerprint"] for e in decision.evidence} == {
                    world.fp("publisher"),
                    world.fp("auditor"),
                }


# ---- through a real registry: a foreign namespace cannot deny your model (issue 12's third attack) ----
@pytest.mark.parametrize("database_url", [None])  # consumer-side logic: one database is enough
def test_foreign_namespace_attestations_do_not_deny_verify_registry(
    tmp_path: Path, registry_world: Any, live_server: Any
) -> None:
    """Mallory, a legitimate publisher of namespace ``evil``, publishes a manifest about acme's model
    digest with other files. Before the change every ``attest verify --registry`` consumer was denied
    (``BUNDLE_UNVERIFIED`` if they did not know Mallory, ``MODEL_FILES_CHANGED`` if they did)."""
    from attest.registry_client import RegistryClient, fetch_verified_attestations

    w = registry_world
    model = make_model(tmp_path / "popular")
    manifest = compute_manifest(model)
    genuine = sign_attestation(w.alice.signer, manifest, "acme/popular", version=VERSION)
    bogus = manifest_predicate(manifest, "evil/popular", VERSION)
    bogus["files"] = bogus["files"][:1]
    foreign = sign_attestation(w.mallory.signer, manifest, "evil/popular", MODEL_MANIFEST_V1, bogus)
    with RegistryClient(live_server.url, token=w.acme_token) as acme:
        acme.publish(genuine)
    with RegistryClient(live_server.url, token=w.evil_token) as evil:
        evil.publish(foreign)

    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": w.alice.fingerprint}]},
        "require": MANIFEST_BY_PUBLISHER,
    }
    policy = Policy.from_document(doc)
    for knows_mallory, code in ((False, "BUNDLE_UNVERIFIED"), (True, "UNTRUSTED_SIGNER")):
        trust = Trust()
        trust.add_key(w.alice.signer.public_key)
        if knows_mallory:
            trust.add_key(w.mallory.signer.public_key)
        decision = verify_model(model, [], trust, policy, registry=live_server.url)
        assert decision.allowed and decision.reasons == [], decision.to_json()
        assert list(rejected(decision).values()) == [code]
        atts = fetch_verified_attestations(live_server.url, manifest.digest, trust, policy)
        assert [a.signer.key_fingerprint for a in atts] == [w.alice.fingerprint]
    # a changed file: the new digest has no attestation in the registry, so the model is denied
    (model / "config.json").write_text("{}\n")
    tampered = verify_model(model, [], trust, policy, registry=live_server.url)
    assert not tampered.allowed and codes(tampered) == ["MISSING_ATTESTATION"]


@pytest.mark.parametrize("database_url", [None])
def test_verify_registry_by_name_names_files_and_honours_signed_ignores(
    tmp_path: Path, registry_world: Any, live_server: Any
) -> None:
    """``--model org/name@version``: the registry is asked by name, so a manifest signed with an extra
    ignore pattern is hashed the signer's way (by digest it finds nothing), a tampered file is named,
    and another version's manifest is not reported as "files changed" against these files."""
    from attest.registry_client import RegistryClient

    w = registry_world
    model = make_model(tmp_path / "ignoring")
    (model / "notes").mkdir()
    (model / "notes" / "todo.txt").write_text("local notes\n")
    signed = compute_manifest(model, ignores=(*DEFAULT_IGNORES, "/notes/"))
    other = make_model(tmp_path / "v0")
    (other / "config.json").write_text('{"model_type": "llama", "hidden_size": 4}\n')
    with RegistryClient(live_server.url, token=w.acme_token) as acme:
        acme.publish(sign_attestation(w.alice.signer, signed, "acme/ignoring", version="2.0"))
        acme.publish(
            sign_attestation(w.alice.signer, compute_manifest(other), "acme/ignoring", version="1.0")
        )
    doc = {
        "apiVersion": "model-attest.dev/policy/v1",
        "signers": {"publisher": [{"key": w.alice.fingerprint}]},
        "require": MANIFEST_BY_PUBLISHER,
    }
    policy, trust = Policy.from_document(doc), Trust()
    trust.add_key(w.alice.signer.public_key)

    by_digest = verify_model(model, [], trust, policy, registry=live_server.url)
    assert codes(by_digest) == ["MISSING_ATTESTATION"]  # the files' default-ignore digest was never signed
    for ref in ("acme/ignoring@2.0", "acme/ignoring"):
        by_name = verify_model(model, [], trust, policy, registry=live_server.url, registry_model=ref)
        assert by_name.allowed and by_name.rejected == [], by_name.to_json()
        assert by_name.details["ignoredFiles"] == ["notes/"]  # a folder left out whole is listed once
    (model / "tokenizer.json").write_text("{}\n")
    tampered = verify_model(
        model, [], trust, policy, registry=live_server.url, registry_model="acme/ignoring@2.0"
    )
    assert codes(tampered) == ["MODEL_FILES_CHANGED", "MISSING_ATTESTATION"]
    assert tampered.details["fileChanges"] == {"changed": ["tokenizer.json"], "missing": [], "extra": []}
    with pytest.raises(UsageError):
        verify_model(model, [], trust, policy, registry_model="acme/ignoring")
