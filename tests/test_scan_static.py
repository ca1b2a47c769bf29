"""Static stage: every gadget family and malformed header of the corpus is flagged, real benign
files are clean, and each structural rule fires for the reason it names."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from attest.predicates import BACKDOOR_SCAN_V1, validate_predicate
from attest.scan import ScanOptions, scan_model
from attest.scan.static import scan_static
from attest.scan.static.pickle_scan import analyse_pickle
from attest.scan.static.safetensors_header import HeaderError, read_header
from tests.scan_fixtures import safetensors_bytes


def test_every_malicious_file_is_flagged(static_corpus: tuple[list[Path], list[Path]]) -> None:
    bad, _ = static_corpus
    assert len(bad) >= 20
    for path in bad:
        findings = scan_static(path).findings
        assert any(f.severity in ("high", "critical") for f in findings), (
            f"{path.name} not flagged: {findings}"
        )


def test_benign_files_are_clean(static_corpus: tuple[list[Path], list[Path]]) -> None:
    _, good = static_corpus
    for path in good:
        assert scan_static(path).findings == [], path.name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("os_system.pkl", "pickle.global-dangerous"),
        ("memo_trick.pkl", "pickle.global-dangerous"),
        ("legacy_multi_pickle.bin", "pickle.global-dangerous"),
        ("zip_renamed.safetensors", "format.extension-mismatch"),
        ("truncated.pkl", "pickle.malformed"),
        ("st_duplicate.safetensors", "safetensors.duplicate-name"),
        ("st_overlap.safetensors", "safetensors.overlap"),
        ("st_gap.safetensors", "safetensors.gap"),
        ("st_trailing.safetensors", "safetensors.trailing-bytes"),
        ("st_span.safetensors", "safetensors.span-mismatch"),
        ("st_dtype.safetensors", "safetensors.dtype-not-allowed"),
        ("st_huge_header.safetensors", "safetensors.header-too-large"),
        ("st_metadata.safetensors", "safetensors.metadata-too-large"),
        ("st_out_of_bounds.safetensors", "safetensors.out-of-bounds"),
        ("object_array.npy", "npy.object-dtype"),
    ],
)
def test_rule_ids(static_corpus: tuple[list[Path], list[Path]], name: str, rule: str) -> None:
    bad, _ = static_corpus
    path = next(p for p in bad if p.name == name)
    assert rule in {f.rule_id for f in scan_static(path).findings}


def test_memo_trick_resolves_the_real_global() -> None:
    """STACK_GLOBAL operands fetched from the memo are resolved to the callable actually imported."""
    from tests.scan_fixtures import _memo_stack_global_trick

    report = analyse_pickle(_memo_stack_global_trick())
    assert report.error is None
    assert ("posix", "system") in report.globals


def test_unresolvable_stack_global_is_a_finding(tmp_path: Path) -> None:
    # STACK_GLOBAL whose operands are the results of calls (not constant strings).
    data = b"\x80\x04\x8c\x01a\x85\x8c\x01b\x85\x93."
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    assert "pickle.global-unresolved" in {f.rule_id for f in scan_static(path).findings}


def test_legacy_file_payload_in_last_pickle_only(tmp_path: Path) -> None:
    """A scanner that stops after the first pickle misses this: the payload is in pickle #4."""
    import os

    from tests.scan_fixtures import _legacy_torch, _Reduce

    data = _legacy_torch(pickle.dumps({}, protocol=2))
    keys = pickle.dumps([_Reduce(os.system, "echo")], protocol=2)
    # Replace the fifth (storage keys) pickle with a payload.
    empty_keys = pickle.dumps([], protocol=2)
    data = data[: -16 - len(empty_keys)] + keys + b"\x00" * 16
    path = tmp_path / "legacy.pt"
    path.write_bytes(data)
    findings = scan_static(path).findings
    assert any(f.rule_id == "pickle.global-dangerous" and "#4" in f.evidence for f in findings)


def test_legacy_file_with_missing_pickles_is_malformed(tmp_path: Path) -> None:
    data = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    path = tmp_path / "short.pt"
    path.write_bytes(data)
    assert "pickle.malformed" in {f.rule_id for f in scan_static(path).findings}


def test_safetensors_duplicate_name_even_when_loader_accepts(tmp_path: Path) -> None:
    raw = safetensors_bytes(
        '{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
        '"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
        b"\x00" * 4,
    )
    path = tmp_path / "dup.safetensors"
    path.write_bytes(raw)
    with path.open("rb") as fh, pytest.raises(HeaderError) as err:
        read_header(fh, len(raw))
    assert err.value.rule == "safetensors.duplicate-name"


def test_valid_safetensors_header_parses(tmp_path: Path) -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]},
        "b": {"dtype": "I64", "shape": [], "data_offsets": [8, 16]},
        "c": {"dtype": "F32", "shape": [0], "data_offsets": [16, 16]},
    }
    raw = safetensors_bytes(header, b"\x01" * 16)
    path = tmp_path / "ok.safetensors"
    path.write_bytes(raw)
    with path.open("rb") as fh:
        parsed = read_header(fh, len(raw))
    assert set(parsed.tensors) == {"a", "b", "c"}
    assert parsed.metadata == {"format": "pt"}


def test_shape_bool_is_not_an_integer(tmp_path: Path) -> None:
    raw = safetensors_bytes({"a": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}}, b"\x00")
    path = tmp_path / "bool.safetensors"
    path.write_bytes(raw)
    assert "safetensors.shape-invalid" in {f.rule_id for f in scan_static(path).findings}


def _model_folder(root: Path, config: dict[str, object], tensors: dict[str, list[int]]) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    header, offset = {}, 0
    for name, shape in tensors.items():
        n = 4
        for d in shape:
            n *= d
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    (root / "model.safetensors").write_bytes(safetensors_bytes(header, b"\x00" * offset))
    return root


def test_config_consistency(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "num_hidden_layers": 1,
        "vocab_size": 10,
        "hidden_size": 4,
        "torch_dtype": "float32",
    }
    ok = _model_folder(
        tmp_path / "ok", config, {"model.embed_tokens.weight": [10, 4], "model.layers.0.w": [4]}
    )
    assert scan_static(ok).findings == []
    bad = _model_folder(
        tmp_path / "bad",
        config,
        {"model.embed_tokens.weight": [12, 4], "model.layers.0.w": [4], "model.layers.7.hidden": [4]},
    )
    rules = {f.rule_id for f in scan_static(bad).findings}
    assert {"consistency.vocab-size", "consistency.unexpected-tensor"} <= rules


def test_code_bearing_content(tmp_path: Path) -> None:
    root = _model_folder(
        tmp_path / "m",
        {"model_type": "llama", "auto_map": {"AutoModelForCausalLM": "modeling_evil.EvilModel"}},
        {"w": [1]},
    )
    (root / "modeling_evil.py").write_text("import os\n")
    module, name = b"transformers.training_args", b"TrainingArguments"
    (root / "training_args.bin").write_bytes(
        b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)]) + name + b"\x93)\x81."
    )
    (root / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{{ ''.__class__.__mro__[1].__subclasses__() }}"})
    )
    rules = {f.rule_id for f in scan_static(root).findings}
    assert {
        "code.auto-map",
        "code.python-file",
        "code.training-args-pickle",
        "pickle.global-not-allowed",
        "code.chat-template-gadget",
    } <= rules


def test_benign_chat_template_is_info_only(tmp_path: Path) -> None:
    root = _model_folder(tmp_path / "m", {"model_type": "llama"}, {"w": [1]})
    (root / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"})
    )
    findings = scan_static(root).findings
    assert [f.rule_id for f in findings] == ["code.chat-template"]
    assert findings[0].severity == "info"
    assert scan_model(root, ScanOptions(static_only=True))["result"] == "PASSED"


def test_static_predicate_validates_and_fails(static_corpus: tuple[list[Path], list[Path]]) -> None:
    bad, good = static_corpus
    predicate = scan_model(bad[0].parent, ScanOptions(static_only=True))
    validate_predicate(BACKDOOR_SCAN_V1, predicate)
    assert predicate["result"] == "FAILED"
    assert predicate["coverage"]["dynamic"] == {"status": "skipped"}
    clean = scan_model(good[0].parent, ScanOptions(static_only=True))
    validate_predicate(BACKDOOR_SCAN_V1, clean)
    assert clean["result"] == "PASSED"
    assert any("Static-only" in text for text in clean["limitations"])
    assert clean["scanFinishedOn"].endswith("Z")


def test_medium_finding_warns(tmp_path: Path) -> None:
    root = _model_folder(tmp_path / "m", {"model_type": "llama"}, {"w": [1]})
    (root / "helper.py").write_text("x = 1\n")
    assert scan_model(root, ScanOptions(static_only=True))["result"] == "WARNED"


def test_header_length_beyond_file_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", 500) + b'{"a": 1}')
    assert {f.rule_id for f in scan_static(path).findings} == {"safetensors.truncated"}


def test_symlink_escaping_the_model_is_rejected(tmp_path: Path) -> None:
    root = _model_folder(tmp_path / "m", {"model_type": "llama"}, {"w": [1]})
    (tmp_path / "outside.bin").write_bytes(b"\x80\x04N.")
    (root / "extra.bin").symlink_to(tmp_path / "outside.bin")
    findings = scan_static(root).findings
    assert [f.rule_id for f in findings] == ["path.rejected"]
    assert scan_model(root, ScanOptions(static_only=True))["result"] == "FAILED"


def test_static_scan_does_not_import_torch(static_corpus: tuple[list[Path], list[Path]]) -> None:
    import subprocess
    import sys

    bad, _ = static_corpus
    code = (
        "import sys; from attest.scan import scan_model, ScanOptions; "
        f"p = scan_model({str(bad[0].parent)!r}, ScanOptions(static_only=True)); "
        "assert p['result'] == 'FAILED'; "
        "assert not {'torch', 'transformers', 'numpy'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
