"""Constitution texts: canonical form, digests, section Merkle root, section proofs, binding predicate.

A constitution published as a web page changes in ways that do not change its meaning (line endings,
no-break spaces, a BOM, NFD accents from another editor), so a digest over raw bytes is not something
independent parties can agree on. The canonical text form specified in
``schemas/constitution-canonical-text.md`` (with test vectors in ``schemas/constitution-vectors.json``)
removes exactly those differences and nothing else: typographic quotes, dashes and letter case are
kept, so any real change of wording changes the digest.

The section root is an RFC 6962 Merkle root over the canonical bytes of each top-level section, so one
can prove that a given section (say, the one on honesty) is part of the bound text without publishing
the rest. The Merkle hashing itself lives in ``attest._internal.merkle`` (shared with the registry log).
"""

from __future__ import annotations

import hashlib
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from attest._internal import merkle
from attest.errors import UsageError, VerificationError

CANONICAL_SPEC_VERSION = "1"
RELATIONSHIPS = ("trained-with", "system-prompt", "evaluated-against")

# Characters that are invisible and carry no wording: removed everywhere (U+FEFF also covers a BOM).
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
# No-break spaces that editors insert for typography: become an ordinary space.
_SPACES = {0x00A0: " ", 0x202F: " "}
_LINE_BREAKS = re.compile("\r\n|\r|\u2028|\u2029")
_HSPACE_RUN = re.compile("[ \t]+")
_ATX_HEADING = re.compile(r"^(#{1,6})(?: |$)")
_FENCE = re.compile(r"^(`{3,}|~{3,})")


def canonicalize(raw: bytes) -> str:
    """Return the canonical text of ``raw`` (spec: schemas/constitution-canonical-text.md).

    Steps, in this order (the order matters: a zero-width joiner between a letter and a combining
    mark would otherwise block NFC composition):
      1. decode as strict UTF-8 (invalid bytes are an error, never replaced);
      2. remove U+200B, U+200C, U+200D, U+2060 and U+FEFF (so a leading BOM goes too);
      3. Unicode NFC (not NFKC: compatibility characters such as ligatures are kept);
      4. U+00A0 and U+202F become U+0020;
      5. CRLF, CR, U+2028 and U+2029 become LF;
      6. in every line, each run of spaces and tabs (leading indentation included) becomes one space,
         and trailing spaces are removed;
      7. runs of blank lines become one blank line; blank lines at the start and end are removed;
      8. the text ends with exactly one LF (an empty text is the single line feed ``"\\n"``).
    """
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise UsageError(f"constitution text is not valid UTF-8 (byte {exc.start})") from None
    text = text.translate(_ZERO_WIDTH)
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_SPACES)
    text = _LINE_BREAKS.sub("\n", text)
    lines: list[str] = []
    for line in text.split("\n"):
        line = _HSPACE_RUN.sub(" ", line).rstrip(" ")
        if line == "" and (not lines or lines[-1] == ""):
            continue  # leading blank line, or a second blank line in a row
        lines.append(line)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Section:
    """One top-level section: its index, its heading line ("" for a preamble) and canonical text."""

    index: int
    heading: str
    text: str

    @property
    def data(self) -> bytes:
        return self.text.encode("utf-8")

    @property
    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.data)


def _headings(lines: list[str]) -> list[tuple[int, int]]:
    """(line number, level) of every ATX heading outside fenced code blocks."""
    found: list[tuple[int, int]] = []
    fence: str | None = None
    for number, line in enumerate(lines):
        opener = _FENCE.match(line)
        if fence is not None:
            if opener and opener.group(1)[0] == fence[0] and len(opener.group(1)) >= len(fence):
                fence = None
            continue
        if opener:
            fence = opener.group(1)
            continue
        match = _ATX_HEADING.match(line)
        if match:
            found.append((number, len(match.group(1))))
    return found


def section_level(canonical: str) -> int | None:
    """The heading level that delimits top-level sections, or None when there is no heading.

    It is the smallest level used by two or more headings; if no level is used twice, the smallest
    level used. So a document with one ``# Title`` and several ``## Part`` headings is split at the
    ``##`` headings (the title line falls into the preamble) rather than being one big section.
    """
    levels = [level for _, level in _headings(canonical.split("\n"))]
    if not levels:
        return None
    repeated = [lvl for lvl in set(levels) if levels.count(lvl) >= 2]
    return min(repeated) if repeated else min(levels)


def split_sections(canonical: str) -> list[Section]:
    """Split canonical text into top-level sections whose concatenation is exactly the text.

    A section starts at a heading line of the section level and runs up to (not including) the next
    one. Text before the first such heading is section 0 (the preamble) if it has any non-blank
    line; otherwise there is no preamble. A text without headings is a single section.
    """
    lines = canonical.split("\n")[:-1]  # canonical text ends with "\n": drop the empty tail
    level = section_level(canonical)
    starts = [n for n, lvl in _headings(lines) if lvl == level] if level is not None else []
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, len(lines)]
    sections: list[Section] = []
    for begin, end in itertools.pairwise(bounds):
        chunk = lines[begin:end]
        match = _ATX_HEADING.match(chunk[0]) if chunk else None
        heading = chunk[0] if match and len(match.group(1)) == level else ""
        sections.append(Section(len(sections), heading, "".join(line + "\n" for line in chunk)))
    return sections


@dataclass(frozen=True)
class ConstitutionDigest:
    """Everything a binding records about one text, computed from its raw bytes."""

    raw_sha256: str
    canonical_sha256: str
    section_root: str
    sections: tuple[Section, ...]
    canonical: str

    @property
    def section_count(self) -> int:
        return len(self.sections)

    def to_json(self) -> dict[str, Any]:
        return {
            "rawDigest": {"sha256": self.raw_sha256},
            "canonicalDigest": {"sha256": self.canonical_sha256},
            "sectionRoot": {"sha256": self.section_root},
            "sectionCount": self.section_count,
            "canonicalization": CANONICAL_SPEC_VERSION,
            "sections": [
                {"index": s.index, "heading": s.heading, "leafHash": s.leaf_hash.hex()} for s in self.sections
            ],
        }


def digest_text(raw: bytes) -> ConstitutionDigest:
    """Canonicalise ``raw`` and compute its raw digest, canonical digest and section root.

    This is the one function the registry calls to check an uploaded text against the digest it
    is stored under (``canonical_sha256``).
    """
    canonical = canonicalize(raw)
    sections = tuple(split_sections(canonical))
    root = merkle.root_from_leaf_hashes([s.leaf_hash for s in sections])
    return ConstitutionDigest(
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        canonical_sha256=hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
        section_root=root.hex(),
        sections=sections,
        canonical=canonical,
    )


def prove_section(raw: bytes, index: int) -> dict[str, Any]:
    """An inclusion proof for section ``index`` that a third party checks with ``verify_section_proof``.

    The proof carries the section's canonical text so it is self-contained: a verifier needs only the
    proof and the section root from a signed binding.
    """
    result = digest_text(raw)
    if not 0 <= index < result.section_count:
        raise UsageError(f"section {index} does not exist (the text has {result.section_count} sections)")
    leaves = [s.leaf_hash for s in result.sections]
    section = result.sections[index]
    return {
        "canonicalization": CANONICAL_SPEC_VERSION,
        "sectionRoot": {"sha256": result.section_root},
        "sectionCount": result.section_count,
        "index": index,
        "heading": section.heading,
        "text": section.text,
        "leafHash": section.leaf_hash.hex(),
        "proof": [h.hex() for h in merkle.inclusion_proof(index, leaves)],
    }


def verify_section_proof(proof: dict[str, Any], section_root: str | None = None) -> None:
    """Raise ``VerificationError`` unless the proof's section text is included under the root.

    ``section_root`` (hex) should come from a verified binding; without it the proof is only
    checked against the root it names itself, which proves nothing about who vouched for that root.
    """
    try:
        text = proof["text"]
        index = int(proof["index"])
        size = int(proof["sectionCount"])
        claimed_root = bytes.fromhex(proof["sectionRoot"]["sha256"])
        path = [bytes.fromhex(h) for h in proof["proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"malformed section proof: {exc}") from None
    if not isinstance(text, str):
        raise VerificationError("malformed section proof: text is not a string")
    root = bytes.fromhex(section_root) if section_root is not None else claimed_root
    if root != claimed_root:
        raise VerificationError("section proof names a different section root than expected")
    merkle.verify_inclusion(merkle.leaf_hash(text.encode("utf-8")), index, size, path, root)


def default_version(raw: bytes) -> str:
    """A version label for a text published without one: derived from its raw bytes, so two parties
    binding the same file agree on it."""
    return "raw-sha256-" + hashlib.sha256(raw).hexdigest()[:12]


def binding_predicate(
    raw: bytes,
    *,
    name: str,
    version: str,
    relationship: str,
    uri: str | None = None,
    license: str | None = None,
    evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build (and validate) a ``constitution-binding/v1`` predicate for the text ``raw``."""
    from attest.predicates import CONSTITUTION_BINDING_V1, validate_predicate

    if relationship not in RELATIONSHIPS:
        raise UsageError(f"relationship must be one of {', '.join(RELATIONSHIPS)}, not {relationship!r}")
    result = digest_text(raw)
    constitution: dict[str, Any] = {"name": name, "version": version}
    if uri is not None:
        constitution["uri"] = uri
    if license is not None:
        constitution["license"] = license
    constitution.update(
        {
            "rawDigest": {"sha256": result.raw_sha256},
            "canonicalDigest": {"sha256": result.canonical_sha256},
            "sectionRoot": {"sha256": result.section_root},
            "sectionCount": result.section_count,
            "canonicalization": CANONICAL_SPEC_VERSION,
        }
    )
    predicate: dict[str, Any] = {"constitution": constitution, "relationship": relationship}
    if evaluation is not None:
        predicate["evaluation"] = evaluation
    validate_predicate(CONSTITUTION_BINDING_V1, predicate)
    return predicate
