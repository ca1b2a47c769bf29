"""Checks over the model folder as a whole: code-bearing content and config <-> weights consistency.

Code-bearing content is what makes ``from_pretrained`` run or render publisher-controlled code:
``auto_map`` entries (remote code), ``*.py`` files, a pickled ``training_args.bin``, and chat
templates (Jinja rendered by every chat client; sandbox escapes have been published). Consistency
checks catch what a loader cannot know: tensors for layers the config does not declare, embeddings
whose shape disagrees with ``vocab_size`` / ``hidden_size``, shards the index does not account for.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from attest.scan.findings import Finding
from attest.scan.static.safetensors_header import SafetensorsHeader

_LAYER_INDEX = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_EMBED_NAMES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")
# Jinja constructs used by published sandbox escapes and template-injection payloads.
_TEMPLATE_GADGETS = re.compile(
    r"__(class|mro|subclasses|globals|builtins|init|import|base|bases|dict|getattribute|loader|spec|code)__"
    r"|\|\s*attr\b|\bfrom_pyfile\b|\b_module\b"
    # a dunder name built from pieces: '__' ~ ..., '_' joined, \x5f escapes, '%c' | format(95)
    r"|['\"]__|__['\"]|['\"]_+['\"]|\\x5f|\\u005f|\\U0000005f|\\137|%c[^'\"]*['\"]\s*\|\s*format"
    r"|\{%-?\s*(import|include|extends|from)\b|\bcycler\b|\bjoiner\b|\blipsum\b|\bself\._TemplateReference"
    r"|\bconfig\.items\b|\bos\.|\bpopen\b|\bsubprocess\b",
)
_TORCH_DTYPE_TO_ST = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


def load_config(root: Path, findings: list[Finding]) -> dict[str, Any] | None:
    """Read ``config.json`` (if any) as JSON; malformed config is a finding, never an exception."""
    path = root / "config.json"
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        reason = "nested too deeply to parse" if isinstance(exc, RecursionError) else str(exc)
        findings.append(Finding("config.malformed", "high", "config.json", f"not JSON: {reason}"[:300]))
        return None
    if not isinstance(doc, dict):
        findings.append(Finding("config.malformed", "high", "config.json", "config is not a JSON object"))
        return None
    return doc


def code_bearing(root: Path, rel_paths: list[str], config: dict[str, Any] | None) -> list[Finding]:
    """Findings for remote code, Python files, pickled training args and chat templates."""
    findings: list[Finding] = []
    for rel in rel_paths:
        if rel.endswith(".py"):
            findings.append(
                Finding("code.python-file", "medium", rel, "Python source shipped with the model")
            )
        if Path(rel).name == "training_args.bin":
            findings.append(
                Finding(
                    "code.training-args-pickle",
                    "medium",
                    rel,
                    "pickled TrainingArguments: loading executes pickle",
                )
            )
    for rel, doc in _json_docs(
        root, rel_paths, ("config.json", "tokenizer_config.json", "processor_config.json")
    ):
        auto_map = doc.get("auto_map")
        if auto_map:
            refs = sorted({str(v) for v in _flatten(auto_map)})
            findings.append(
                Finding(
                    "code.auto-map",
                    "high",
                    rel,
                    f"auto_map requires trust_remote_code: {', '.join(refs)[:400]}",
                )
            )
    for rel, template in _chat_templates(root, rel_paths):
        findings.extend(template_findings(rel, template))
    return findings


def template_findings(rel: str, template: str, where: str = "chat template") -> list[Finding]:
    """One finding for a Jinja chat template: ``code.chat-template-gadget`` (high) when it contains a
    sandbox-escape construct, else ``code.chat-template`` (info) recording its sha256. Shared by
    ``tokenizer_config.json``, ``chat_template.json``, ``*.jinja`` and GGUF metadata templates."""
    digest = hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()
    gadget = _TEMPLATE_GADGETS.search(template)
    if gadget:
        return [
            Finding(
                "code.chat-template-gadget",
                "high",
                rel,
                f"{where} contains {gadget.group(0)!r} (sandbox-escape construct)",
                {"sha256": digest},
            )
        ]
    return [
        Finding("code.chat-template", "info", rel, f"{where} ({len(template)} chars)", {"sha256": digest})
    ]


def _flatten(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _flatten(v)]
    if isinstance(value, list):
        return [x for v in value for x in _flatten(v)]
    return [value]


def _json_docs(root: Path, rel_paths: list[str], names: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for rel in rel_paths:
        if Path(rel).name in names:
            try:
                doc = json.loads((root / rel).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError, OSError, RecursionError):
                continue  # config.json errors are reported by load_config; others are not code
            if isinstance(doc, dict):
                out.append((rel, doc))
    return out


def _chat_templates(root: Path, rel_paths: list[str]) -> list[tuple[str, str]]:
    templates: list[tuple[str, str]] = []
    for rel, doc in _json_docs(root, rel_paths, ("tokenizer_config.json", "chat_template.json")):
        value = doc.get("chat_template")
        if isinstance(value, str):
            templates.append((rel, value))
        elif isinstance(value, list):
            templates.extend((rel, str(t.get("template", ""))) for t in value if isinstance(t, dict))
    for rel in rel_paths:
        if rel.endswith(".jinja"):
            try:
                templates.append((rel, (root / rel).read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError):
                templates.append((rel, ""))
    return templates


def consistency(
    config: dict[str, Any] | None, headers: dict[str, SafetensorsHeader], root: Path
) -> list[Finding]:
    """Config <-> safetensors consistency: layer indices, embedding shape, dtype, shard index."""
    findings: list[Finding] = []
    findings.extend(_index_checks(root, headers))
    if config is None or not headers:
        return findings
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)
    n_layers = _first_int(text, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _first_int(text, "vocab_size")
    hidden = _first_int(text, "hidden_size", "n_embd", "d_model")
    declared_dtype = _TORCH_DTYPE_TO_ST.get(str(config.get("torch_dtype") or config.get("dtype") or ""))
    for rel, header in sorted(headers.items()):
        for name, info in header.tensors.items():
            match = _LAYER_INDEX.search(name)
            if n_layers is not None and match and int(match.group(1)) >= n_layers:
                findings.append(
                    Finding(
                        "consistency.unexpected-tensor",
                        "medium",
                        rel,
                        f"{name!r} belongs to layer {match.group(1)} but config declares {n_layers} layers",
                    )
                )
            if name.endswith(_EMBED_NAMES) and len(info.shape) == 2:
                if vocab is not None and info.shape[0] != vocab:
                    findings.append(
                        Finding(
                            "consistency.vocab-size",
                            "medium",
                            rel,
                            f"{name!r} has {info.shape[0]} rows, vocab_size is {vocab}",
                        )
                    )
                if hidden is not None and info.shape[1] != hidden:
                    findings.append(
                        Finding(
                            "consistency.hidden-size",
                            "medium",
                            rel,
                            f"{name!r} has width {info.shape[1]}, hidden size is {hidden}",
                        )
                    )
            if declared_dtype and info.dtype in _TORCH_DTYPE_TO_ST.values() and info.dtype != declared_dtype:
                findings.append(
                    Finding(
                        "consistency.dtype",
                        "low",
                        rel,
                        f"{name!r} is {info.dtype}, config declares {declared_dtype}",
                    )
                )
                declared_dtype = None  # report once
    return findings


def _first_int(doc: dict[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = doc.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _index_checks(root: Path, headers: dict[str, SafetensorsHeader]) -> list[Finding]:
    findings: list[Finding] = []
    for index_path in sorted(root.glob("*.safetensors.index.json")):
        rel = index_path.name
        try:
            doc = json.loads(index_path.read_text(encoding="utf-8"))
            weight_map = doc["weight_map"]
            assert isinstance(weight_map, dict)
        except (ValueError, KeyError, AssertionError, UnicodeDecodeError, RecursionError, OSError):
            findings.append(Finding("consistency.index-malformed", "high", rel, "unreadable shard index"))
            continue
        for tensor, shard in sorted(weight_map.items()):
            header = headers.get(str(shard))
            if header is None:
                findings.append(
                    Finding(
                        "consistency.index-missing-shard",
                        "high",
                        rel,
                        f"{tensor!r} -> missing shard {shard!r}",
                    )
                )
            elif tensor not in header.tensors:
                findings.append(
                    Finding("consistency.index-missing-tensor", "high", rel, f"{tensor!r} not in {shard!r}")
                )
        listed = set(map(str, weight_map.values()))
        for shard, header in headers.items():
            if shard in listed:
                extra = sorted(set(header.tensors) - {t for t, s in weight_map.items() if s == shard})
                if extra:
                    findings.append(
                        Finding(
                            "consistency.unexpected-tensor",
                            "medium",
                            shard,
                            f"tensors not in the index: {extra[:5]}",
                        )
                    )
    return findings
