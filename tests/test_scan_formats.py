"""Static scanner, every format: each corpus sample gets its expected result and rule (malicious and
malformed FAILED, benign PASSED, unanalysable WARNED), bounds hold on hostile inputs without a
traceback, and the SARIF export validates against the official 2.1.0 schema."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from attest.predicates import BACKDOOR_SCAN_V1, validate_predicate
from attest.scan import ScanOptions, scan_model
from attest.scan.sarif import to_sarif
from attest.scan.static import formats, scan_static
from attest.scan.static.containers import MAX_DEPTH
from attest.scan.static.gguf import GGUFError, parse_gguf
from attest.scan.static.msgpack import MsgpackError, walk
from attest.scan.static.pickle_scan import analyse_pickle
from bench.static_corpus import BENIGN, SAMPLES, Sample, build_corpus
from tests.core_fixtures import REPO, RunAttest

SARIF_SCHEMA = REPO / "tests" / "data" / "vendored" / "sarif-schema-2.1.0.json"
_EVIL = b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x8c\x06system\x93\x8c\x04echo\x85R."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every sample written once (real writers: joblib, gguf, onnx, h5py, py7zr, torch...)."""
    root = tmp_path_factory.mktemp("formats")
    return {sample.name: path for sample, path in build_corpus(root)}


def _scan(path: Path) -> dict[str, Any]:
    return scan_model(path, ScanOptions(static_only=True))


def _rules(path: Path) -> set[str]:
    return {f.rule_id for f in scan_static(path).findings}


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.name)
def test_sample_gets_its_result(sample: Sample, corpus: dict[str, Path]) -> None:
    predicate = _scan(corpus[sample.name])
    validate_predicate(BACKDOOR_SCAN_V1, predicate)
    rules = {f["ruleId"] for f in predicate["staticFindings"]}
    assert predicate["result"] == sample.expected, predicate["staticFindings"]
    if sample.rule is not None:
        assert sample.rule in rules
    if sample.category == BENIGN:  # zero false alarms: nothing above info
        assert [f for f in predicate["staticFindings"] if f["severity"] != "info"] == []


def test_corpus_covers_every_format() -> None:
    rules = {s.rule.split(".")[0] for s in SAMPLES if s.rule}
    assert {"gguf", "keras", "hdf5", "onnx", "tensorflow", "tflite", "msgpack", "hydra", "archive"} <= rules
    assert {s.category for s in SAMPLES} == {"malicious", "malformed", "benign", "unanalysable"}


def test_obj_opcode_keeps_the_global() -> None:
    """The walker used to raise "OBJ expected MARK" and drop the global it had already seen."""
    report = analyse_pickle(b"(cos\nsystem\nS'echo'\no.")
    assert report.error is None
    assert report.called == [("os", "system")]
    inst = analyse_pickle(b"(S'echo'\nios\nsystem\n.")
    assert inst.error is None and inst.called == [("os", "system")]


def test_truncated_stream_still_reports_its_globals(tmp_path: Path) -> None:
    path = tmp_path / "cut.bin"
    path.write_bytes(_EVIL[:-1])  # no STOP: pickle.load has already called os.system
    assert {"pickle.malformed", "pickle.global-dangerous"} <= _rules(path)


def test_hidden_stream_offset_and_plain_trailing_data(tmp_path: Path) -> None:
    head = pickle.dumps([1, 2], protocol=2)
    hidden = tmp_path / "hidden.pkl"
    hidden.write_bytes(head + b"\xff\xfe junk" + _EVIL)
    findings = scan_static(hidden).findings
    assert any(f"hidden at byte {len(head) + 7}" in f.evidence for f in findings)
    trailing = tmp_path / "trailing.pkl"
    trailing.write_bytes(head + b"\xff\xfe junk with no stream")
    assert [f.rule_id for f in scan_static(trailing).findings] == ["pickle.trailing-data"]
    assert _scan(trailing)["result"] == "PASSED"


def test_joblib_arrays_are_stepped_over_exactly(corpus: dict[str, Path]) -> None:
    data = corpus["arrays.joblib"].read_bytes()
    report = analyse_pickle(data)
    assert report.error is None
    assert report.end == len(data)
    assert ("joblib.numpy_pickle", "NumpyArrayWrapper") in report.globals


def test_text_that_merely_starts_like_a_global_is_not_a_pickle(tmp_path: Path) -> None:
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("os\nsystem\ncat\ndog\n")
    words = tmp_path / "words.bin"
    words.write_text("cos\nsystem\nhello world\n")
    assert scan_static(vocab).findings == []
    assert scan_static(words).findings == []
    assert formats.detect(b"x^2 + y^2 = z^2\n", 16) == formats.TEXT


def test_nesting_bound(tmp_path: Path) -> None:
    data = _EVIL
    for _ in range(MAX_DEPTH + 2):
        data = gzip.compress(data)
    path = tmp_path / "deep.gz"
    path.write_bytes(data)
    rules = _rules(path)
    assert "archive.too-deep" in rules
    assert _scan(path)["result"] == "FAILED"


def test_zip_bomb_refused_from_declared_sizes(tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * (20 << 20))
    assert "archive.decompression-bomb" in _rules(path)


@pytest.mark.parametrize(("module", "name", "data"), [
    ("zstandard", "x.pkl.zst", None),
    ("lz4", "x.pkl.lz4", None),
    ("py7zr", "x.7z", None),
    ("h5py", "x.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
])  # fmt: skip
def test_missing_optional_parser_is_unanalysed_never_passed(
    module: str, name: str, data: bytes | None, corpus: dict[str, Path], tmp_path: Path
) -> None:
    source = {"zstandard": "payload.pkl.zst", "lz4": "payload.pkl.lz4", "py7zr": "payload.7z"}.get(module)
    path = tmp_path / name
    path.write_bytes(data if data is not None else corpus[str(source)].read_bytes())
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from attest.scan import scan_model, ScanOptions\n"
        f"p = scan_model({str(path)!r}, ScanOptions(static_only=True))\n"
        "print(p['result'], sorted({f['ruleId'] for f in p['staticFindings']}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "WARNED", done.stdout
    assert "format.unanalysed" in done.stdout


def test_gguf_truncated_anywhere_is_malformed_never_a_crash(corpus: dict[str, Path]) -> None:
    data = corpus["chat.gguf"].read_bytes()
    assert parse_gguf(data).templates
    for cut in range(0, len(data) - 1, 13):
        with pytest.raises(GGUFError):
            parse_gguf(data[:cut])


def test_onnx_truncated_anywhere_is_malformed_or_clean(corpus: dict[str, Path], tmp_path: Path) -> None:
    data = corpus["add.onnx"].read_bytes()
    path = tmp_path / "cut.onnx"
    for cut in range(1, len(data), 7):
        path.write_bytes(data[:cut])
        rules = _rules(path)
        assert rules <= {"onnx.malformed"}, (cut, rules)


def test_hostile_nesting_is_a_finding(tmp_path: Path) -> None:
    with pytest.raises(MsgpackError):
        walk(b"\x91" * 100_000 + b"\xc0")
    keras = tmp_path / "deep.keras"
    with zipfile.ZipFile(keras, "w") as zf:
        zf.writestr("config.json", "[" * 200_000 + "]" * 200_000)
        zf.writestr("metadata.json", "{}")
    assert "keras.config-malformed" in _rules(keras)
    yaml_file = tmp_path / "model_config.yaml"
    yaml_file.write_text("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert "hydra.config-malformed" in _rules(yaml_file)


def test_deep_config_json_is_failed_not_a_traceback(tmp_path: Path, run_attest: RunAttest) -> None:
    """Issue 12: a 200,000-deep config.json crashed the scan with RecursionError."""
    (tmp_path / "config.json").write_text("[" * 200_000 + "]" * 200_000)
    result = run_attest("scan", tmp_path, "--static-only", "--json")
    assert "Traceback" not in result.stderr
    assert result.returncode == 1
    predicate = json.loads(result.stdout)
    assert predicate["result"] == "FAILED"
    assert [f["ruleId"] for f in predicate["staticFindings"]] == ["config.malformed"]


def test_symlink_loops_are_refused_not_a_traceback(tmp_path: Path, run_attest: RunAttest) -> None:
    """Issue 12: a symlink loop inside the model, or as the model path itself."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "loop.bin").symlink_to(model / "loop.bin")
    inside = run_attest("scan", model, "--static-only", "--json")
    assert "Traceback" not in inside.stderr
    assert inside.returncode == 1
    assert [f["ruleId"] for f in json.loads(inside.stdout)["staticFindings"]] == ["path.rejected"]
    (tmp_path / "self").symlink_to(tmp_path / "self")
    itself = run_attest("scan", tmp_path / "self", "--static-only")
    assert "Traceback" not in itself.stderr
    assert itself.returncode == 2
    assert len(itself.stderr.strip().splitlines()) == 1


def _sarif_errors(doc: dict[str, Any]) -> list[str]:
    schema = json.loads(SARIF_SCHEMA.read_text())
    return [e.message for e in Draft4Validator(schema).iter_errors(doc)]


def test_sarif_validates_with_locations(tmp_path: Path) -> None:
    root = tmp_path / "model dir"
    root.mkdir()
    (root / "weights.pkl.bz2").write_bytes(bz2.compress(_EVIL))
    (root / "blob.dat").write_bytes(bytes(range(256)) * 4)
    (root / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    predicate = _scan(root)
    log = to_sarif(predicate, root)
    assert _sarif_errors(log) == []
    run = log["runs"][0]
    by_rule = {r["ruleId"]: r for r in run["results"]}
    evil = by_rule["pickle.global-dangerous"]
    assert (evil["kind"], evil["level"]) == ("fail", "error")
    assert evil["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "weights.pkl.bz2"
    assert evil["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "weights.pkl.bz2!weights.pkl"
    assert by_rule["format.unanalysed"]["level"] == "warning"
    assert (by_rule["code.chat-template"]["kind"], by_rule["code.chat-template"]["level"]) == (
        "informational",
        "none",
    )
    assert run["originalUriBaseIds"]["MODELROOT"]["uri"].endswith("/model%20dir/")
    assert run["properties"]["result"] == "FAILED"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]][evil["ruleIndex"]] == "pickle.global-dangerous"


def test_sarif_validator_catches_a_broken_log(tmp_path: Path) -> None:
    (tmp_path / "x.pkl").write_bytes(_EVIL)
    log = to_sarif(_scan(tmp_path), tmp_path)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert _sarif_errors(log) != []


def test_cli_writes_sarif(tmp_path: Path, run_attest: RunAttest, corpus: dict[str, Path]) -> None:
    out = tmp_path / "scan.sarif"
    result = run_attest("scan", corpus["jinja_escape.gguf"], "--static-only", "--sarif", out)
    assert result.returncode == 1, result.stderr
    log = json.loads(out.read_text())
    assert _sarif_errors(log) == []
    assert log["runs"][0]["results"][0]["ruleId"] == "code.chat-template-gadget"
    missing = run_attest("scan", corpus["chat.gguf"], "--static-only", "--sarif", tmp_path / "no" / "x.sarif")
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr


def test_static_only_on_new_formats_imports_no_torch_or_numpy(
    corpus: dict[str, Path], tmp_path: Path
) -> None:
    """HDF5 needs h5py (and so numpy); every other format is parsed by hand."""
    folder = tmp_path / "all"
    folder.mkdir()
    for sample in SAMPLES:
        source = corpus[sample.name]
        if sample.hdf5:
            continue
        if source.is_dir():
            shutil.copytree(source, folder / sample.name)
        else:
            shutil.copy(source, folder / sample.name)
    code = (
        "import sys; from attest.scan import scan_model, ScanOptions\n"
        f"p = scan_model({str(folder)!r}, ScanOptions(static_only=True))\n"
        "assert p['result'] == 'FAILED', p['result']\n"
        "print(sorted(m for m in ('torch', 'numpy', 'transformers', 'onnx', 'gguf') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_coverage_counts_formats(corpus: dict[str, Path]) -> None:
    predicate = _scan(corpus["hf_repo"])
    assert predicate["coverage"]["static"]["formats"]["text"] >= 8
    assert predicate["coverage"]["static"]["formats"]["safetensors"] == 1


def test_compressed_joblib_is_failed_not_warned(corpus: dict[str, Path], run_attest: RunAttest) -> None:
    """Issue 14: a zlib/xz joblib payload was only WARNED, so --fail-on failed let it through."""
    for name in ("joblib_zlib.joblib", "joblib_xz.joblib"):
        result = run_attest("scan", corpus[name], "--static-only")
        assert result.returncode == 1, (name, result.stdout)


def test_pickled_archive_member_inside_zip_is_named(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner/payload.bin", _EVIL)
    path = tmp_path / "bundle.zip"
    path.write_bytes(buf.getvalue())
    findings = [f for f in scan_static(path).findings if f.rule_id == "pickle.global-dangerous"]
    assert [f.file for f in findings] == ["bundle.zip!inner/payload.bin"]


_LLAMA3_LIKE = (
    "{{- bos_token }}{%- set ns = namespace(system='') %}{%- if messages[0]['role'] == 'system' %}"
    "{%- set ns.system = messages[0]['content'] | trim %}{%- endif %}"
    "{{- 'Today Date: ' + strftime_now('%d %b %Y') + '\\n' }}{%- for m in messages %}"
    "{%- if m['role'] not in ['user', 'assistant', 'system'] %}{{ raise_exception('bad role') }}{%- endif %}"
    "{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
    "{%- if m.tool_calls is defined %}{{ m.tool_calls | tojson }}{%- endif %}{%- endfor %}"
)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
        "{{ x['__cla' ~ 'ss__'] }}",
        "{{ ('%c%c'|format(95, 95)) ~ 'class' }}",
        "{{ ['_', '_', 'class']|join }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% import 'os' as os %}",
    ],
)
def test_obfuscated_template_gadgets_are_found(template: str) -> None:
    from attest.scan.static.config_checks import template_findings

    assert [f.rule_id for f in template_findings("t", template)] == ["code.chat-template-gadget"]


@pytest.mark.parametrize("template", [_LLAMA3_LIKE, "{% for m in messages %}{{ m.content }}{% endfor %}"])
def test_real_world_templates_are_not_gadgets(template: str) -> None:
    from attest.scan.static.config_checks import template_findings

    assert [f.rule_id for f in template_findings("t", template)] == ["code.chat-template"]


def test_plain_npz_arrays_are_judged_by_header_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large plain array inside an .npz is never read (its header says it is raw numbers), while
    an object array in the same archive is still unpickled-analysed."""
    import numpy as np

    from attest.scan.static import containers

    monkeypatch.setattr(containers, "MAX_MEMBER_BYTES", 4096)
    plain = tmp_path / "plain.npz"
    np.savez(plain, big=np.zeros(100_000))
    assert scan_static(plain).findings == []
    mixed = tmp_path / "mixed.npz"
    np.savez(mixed, big=np.zeros(100_000), objs=np.array([{"a": 1}], dtype=object))
    assert "npy.object-dtype" in _rules(mixed)


def test_sarif_of_a_dynamic_scan_with_an_error(tmp_path: Path) -> None:
    """Dynamic signals become pass/fail results; an error makes executionSuccessful false, so a
    dashboard never shows an ERROR scan as clean."""
    from datetime import UTC, datetime

    from attest.scan.dynamic.outcome import DynamicOutcome, Signal
    from attest.scan.predicate import build_predicate

    dynamic = DynamicOutcome(
        signals=[
            Signal("entropy_collapse", 0.02, 0.1, "nats", True, below=True),
            Signal("attention_hijack", 0.1, 0.3, "attention difference", False),
        ],
        error="weights do not load",
    )
    now = datetime.now(UTC)
    predicate = build_predicate(
        options=ScanOptions(),
        findings=[],
        static_coverage={"files": 0},
        dynamic=dynamic,
        errors=[],
        started=now,
        finished=now,
    )
    log = to_sarif(predicate, tmp_path)
    assert _sarif_errors(log) == []
    run = log["runs"][0]
    kinds = {r["ruleId"]: (r["kind"], r["level"]) for r in run["results"]}
    assert kinds == {
        "dynamic.entropy_collapse": ("fail", "warning"),
        "dynamic.attention_hijack": ("pass", "none"),
    }
    assert run["invocations"][0]["executionSuccessful"] is False
    assert run["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"] == "weights do not load"
