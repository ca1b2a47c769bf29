"""RFC 6962 / RFC 9162 Merkle tree hashing, inclusion and consistency proofs.

Owned here rather than taken from a library: the candidates are GPL, private, or days old (see
shared notes/transparency-log.md), and the algorithms are short enough to test exhaustively.
The registry's transparency log and the constitution section roots both build on this module.

All hashes are raw 32-byte SHA-256 digests. Proof generation works over the full list of leaf
hashes (the registry keeps them in order); verification needs only the proof and the roots.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from attest.errors import VerificationError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """MTH of a one-leaf tree: SHA-256(0x00 || data). The prefix stops leaf/node confusion."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash over already-hashed leaves; the empty tree hashes to SHA-256("").

    Iterative (bottom-up, carrying an odd last node upward), which gives the same root as the
    recursive RFC definition and avoids deep recursion for large logs.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# (start, count) -> MTH of leaves [start, start + count). Proof generation only ever asks for ranges the
# RFC's recursive split produces, so a log can answer from stored complete-subtree hashes.
SubtreeHash = Callable[[int, int], bytes]


def _list_subtree(leaf_hashes: Sequence[bytes]) -> SubtreeHash:
    return lambda start, count: root_from_leaf_hashes(leaf_hashes[start : start + count])


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree over ``leaf_hashes`` (RFC 6962 2.1.1), leaf-first."""
    return inclusion_path(index, len(leaf_hashes), _list_subtree(leaf_hashes))


def inclusion_path(index: int, size: int, subtree: SubtreeHash) -> list[bytes]:
    """Audit path for leaf ``index`` in a tree of ``size`` leaves, from a subtree-hash oracle."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    path: list[bytes] = []
    start, n, m = 0, size, index
    while n > 1:  # PATH(m, D[start:start+n]), unrolled from the top; siblings collected top-down
        k = _split(n)
        if m < k:
            path.append(subtree(start + k, n - k))
            n = k
        else:
            path.append(subtree(start, k))
            start, n, m = start + k, n - k, m - k
    path.reverse()
    return path


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Proof that the tree of the first ``size1`` leaves is a prefix of the tree over all leaves.

    Edge cases (ours, the RFC leaves them open): size1 == size2 and size1 == 0 give an empty proof;
    size1 > size2 or a negative size is a caller error.
    """
    return consistency_path(size1, len(leaf_hashes), _list_subtree(leaf_hashes))


def consistency_path(size1: int, size2: int, subtree: SubtreeHash) -> list[bytes]:
    """Consistency proof between sizes ``size1`` <= ``size2`` from a subtree-hash oracle."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"cannot prove consistency from size {size1} to size {size2}")
    if size1 in (0, size2):
        return []
    proof: list[bytes] = []
    start, n, m, complete = 0, size2, size1, True
    while m != n:  # SUBPROOF(m, D[start:start+n], complete), unrolled
        k = _split(n)
        if m <= k:
            proof.append(subtree(start + k, n - k))
            n = k
        else:
            proof.append(subtree(start, k))
            start, n, m, complete = start + k, n - k, m - k, False
    if not complete:
        proof.append(subtree(start, n))
    proof.reverse()
    return proof


def complete_subtrees(start: int, count: int) -> list[tuple[int, int]]:
    """The complete subtrees (level, index at that level) whose hashes give MTH(D[start:start+count]).

    Valid for every range the RFC split produces (``start`` aligned to the largest power of two that
    fits ``count``); left to right. A log storing complete-subtree hashes needs only these rows.
    """
    out: list[tuple[int, int]] = []
    while count > 0:
        k = count if count & (count - 1) == 0 else _split(count)
        level = k.bit_length() - 1
        if start % k:
            raise ValueError(f"range [{start}, {start + count}) is not produced by the RFC split")
        out.append((level, start >> level))
        start, count = start + k, count - k
    return out


def combine_subtrees(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its complete subtrees (left to right): the right edge folds first."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is not a {HASH_SIZE}-byte hash")


def root_from_inclusion_proof(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """Recompute the root implied by an inclusion proof (RFC 9162 2.1.3.2); raises on malformed input."""
    if size <= 0 or not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not inside a tree of size {size}")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, size - 1
    r = bytes(leaf)
    for p in proof:
        _check_hash(p, "inclusion proof element")
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` sits at ``index`` of the tree of ``size`` leaves with ``root``."""
    _check_hash(root, "root hash")
    if root_from_inclusion_proof(leaf_hash, index, size, proof) != root:
        raise VerificationError(f"inclusion proof for leaf {index} does not match the root of size {size}")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree (size1, root1) is a prefix of (size2, root2) (RFC 9162 2.1.4.2).

    size1 == size2 needs an empty proof and equal roots; size1 == 0 needs an empty proof (the empty
    tree is a prefix of every tree); size1 > size2 is always rejected.
    """
    _check_hash(root1, "first root hash")
    _check_hash(root2, "second root hash")
    for p in proof:
        _check_hash(p, "consistency proof element")
    if size1 < 0 or size2 < 0 or size1 > size2:
        raise VerificationError(f"no consistency from tree size {size1} to a smaller size {size2}")
    if size1 == size2:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if root1 != root2:
            raise VerificationError(f"two different roots for the same tree size {size1}: log forked")
        return
    if size1 == 0:
        if proof:
            raise VerificationError("consistency proof from the empty tree must be empty")
        if root1 != EMPTY_ROOT:
            raise VerificationError("root of the empty tree is not SHA-256 of the empty string")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: root1 is itself a node of tree 2
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than expected")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than expected")
    if fr != root1:
        raise VerificationError(f"consistency proof does not match the root of tree size {size1}")
    if sr != root2:
        raise VerificationError(f"consistency proof does not match the root of tree size {size2}: log forked")
