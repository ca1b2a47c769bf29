"""RFC 6962/9162 Merkle proofs, checked against an independent reference tree for every small shape."""

from __future__ import annotations

import hashlib

import pytest

from attest._internal import merkle
from attest.errors import VerificationError

MAX = 64


def _ref_root(leaves: list[bytes]) -> bytes:
    """Straight-from-the-RFC recursive MTH over raw leaf data (independent of the module)."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + _ref_root(leaves[:k]) + _ref_root(leaves[k:])).digest()


DATA = [f"leaf-{i}".encode() for i in range(MAX)]
HASHES = [merkle.leaf_hash(d) for d in DATA]
ROOTS = [_ref_root(DATA[:n]) for n in range(MAX + 1)]

# Certificate Transparency's reference vectors (RFC 6962 test data, as used by the Go and C++ logs).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_ct_reference_roots() -> None:
    hashes = [merkle.leaf_hash(d) for d in CT_LEAVES]
    for n in range(1, 9):
        assert merkle.root_from_leaf_hashes(hashes[:n]).hex() == CT_ROOTS[n - 1]


def test_empty_tree_and_prefixes() -> None:
    assert merkle.root_from_leaf_hashes([]) == hashlib.sha256(b"").digest()
    assert merkle.leaf_hash(b"") != merkle.node_hash(b"", b"")
    for n in range(MAX + 1):
        assert merkle.root_from_leaf_hashes(HASHES[:n]) == ROOTS[n]


def test_every_inclusion_proof_verifies_and_only_at_its_place() -> None:
    for size in range(1, MAX + 1):
        for index in range(size):
            proof = merkle.inclusion_proof(index, HASHES[:size])
            merkle.verify_inclusion(HASHES[index], index, size, proof, ROOTS[size])
            # the same proof must not vouch for a neighbour leaf or another index
            if size > 1:
                other = (index + 1) % size
                with pytest.raises(VerificationError):
                    merkle.verify_inclusion(HASHES[other], index, size, proof, ROOTS[size])
                with pytest.raises(VerificationError):
                    merkle.verify_inclusion(HASHES[index], other, size, proof, ROOTS[size])


def test_every_consistency_proof_verifies() -> None:
    for size2 in range(0, MAX + 1):
        for size1 in range(0, size2 + 1):
            proof = merkle.consistency_proof(size1, HASHES[:size2])
            merkle.verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2])
            if 0 < size1 < size2:
                # a different second root (a forked log) must be caught
                with pytest.raises(VerificationError):
                    merkle.verify_consistency(size1, size2, proof, ROOTS[size1], ROOTS[size2 - 1])
                with pytest.raises(VerificationError):
                    merkle.verify_consistency(size1, size2, proof, ROOTS[size1 - 1], ROOTS[size2])


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


def test_inclusion_tamper_cases() -> None:
    size, index = 13, 6
    proof = merkle.inclusion_proof(index, HASHES[:size])
    root = ROOTS[size]
    for i in range(len(proof)):  # any flipped element
        bad = list(proof)
        bad[i] = _flip(bad[i])
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(HASHES[index], index, size, bad, root)
    cases = [
        (HASHES[index], index, size, proof[:-1], root),  # truncated
        (HASHES[index], index, size, [*proof, proof[0]], root),  # extended
        (HASHES[index], index, index + 1, proof, root),  # wrong size (a different tree shape)
        (HASHES[index], index, size, proof, _flip(root)),  # wrong root
        (HASHES[index], size, size, proof, root),  # index == size
        (HASHES[index], -1, size, proof, root),
        (HASHES[index], 0, 0, [], merkle.EMPTY_ROOT),  # nothing is in the empty tree
        (HASHES[index][:31], index, size, proof, root),  # short hash
        (HASHES[index], index, size, [*proof[:-1], proof[-1] + b"\x00"], root),
        (DATA[index], index, size, proof, root),  # raw data is not a leaf hash
    ]
    for leaf, idx, sz, pr, rt in cases:
        with pytest.raises(VerificationError):
            merkle.verify_inclusion(leaf, idx, sz, pr, rt)


def test_single_leaf_tree() -> None:
    merkle.verify_inclusion(HASHES[0], 0, 1, [], HASHES[0])
    with pytest.raises(VerificationError):
        merkle.verify_inclusion(HASHES[0], 0, 1, [HASHES[1]], HASHES[0])


def test_consistency_edge_and_tamper_cases() -> None:
    # equal sizes: empty proof and equal roots
    merkle.verify_consistency(7, 7, [], ROOTS[7], ROOTS[7])
    with pytest.raises(VerificationError, match="forked"):
        merkle.verify_consistency(7, 7, [], ROOTS[7], ROOTS[8])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(7, 7, [ROOTS[1]], ROOTS[7], ROOTS[7])
    # size1 == 0
    merkle.verify_consistency(0, 9, [], ROOTS[0], ROOTS[9])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 9, [ROOTS[9]], ROOTS[0], ROOTS[9])
    with pytest.raises(VerificationError):
        merkle.verify_consistency(0, 9, [], ROOTS[3], ROOTS[9])
    # size1 > size2
    with pytest.raises(VerificationError):
        merkle.verify_consistency(9, 5, merkle.consistency_proof(5, HASHES[:9]), ROOTS[9], ROOTS[5])
    with pytest.raises(ValueError):
        merkle.consistency_proof(10, HASHES[:9])
    # non-empty sizes need a proof
    with pytest.raises(VerificationError):
        merkle.verify_consistency(3, 9, [], ROOTS[3], ROOTS[9])
    proof = merkle.consistency_proof(6, HASHES[:27])
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = _flip(bad[i])
        with pytest.raises(VerificationError):
            merkle.verify_consistency(6, 27, bad, ROOTS[6], ROOTS[27])
    for bad in (proof[:-1], [*proof, proof[0]], proof[1:]):
        with pytest.raises(VerificationError):
            merkle.verify_consistency(6, 27, bad, ROOTS[6], ROOTS[27])
    with pytest.raises(VerificationError):  # right proof, claimed size of another shape
        merkle.verify_consistency(6, 8, proof, ROOTS[6], ROOTS[27])


def test_proof_generation_rejects_bad_index() -> None:
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, HASHES[:3])
    with pytest.raises(ValueError):
        merkle.inclusion_proof(0, [])


def test_complete_subtree_decomposition_gives_every_root_and_proof() -> None:
    """What the registry does: answer proofs from stored complete-subtree hashes only."""
    nodes: dict[tuple[int, int], bytes] = {}
    for level in range(7):
        width = 1 << level
        for idx in range(MAX // width):
            nodes[(level, idx)] = merkle.root_from_leaf_hashes(HASHES[idx * width : (idx + 1) * width])

    def subtree(start: int, count: int) -> bytes:
        return merkle.combine_subtrees([nodes[k] for k in merkle.complete_subtrees(start, count)])

    for size in range(1, MAX + 1):
        assert subtree(0, size) == ROOTS[size]
        for index in range(size):
            assert merkle.inclusion_path(index, size, subtree) == merkle.inclusion_proof(index, HASHES[:size])
        for size1 in range(size + 1):
            assert merkle.consistency_path(size1, size, subtree) == merkle.consistency_proof(
                size1, HASHES[:size]
            )
    with pytest.raises(ValueError):
        merkle.complete_subtrees(1, 2)  # not a range the split produces
