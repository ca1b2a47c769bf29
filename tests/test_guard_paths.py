"""Every load path the guard covers, attacked (issue 13, "Coverage").

Each test builds a signed folder, then a copy whose code or pickle would write a marker file (or whose
weights were changed), and shows three things in one process:
  * guarded, the tampered copy is refused, naming the file and the reason on one line, the marker is
    absent and nothing of it was returned;
  * guarded, the verified folder loads (control 1: the guard is not just refusing everything);
  * unguarded, the very same call loads the tampered bytes or runs the planted code (control 2: the
    attack is real, so the refusal is the guard's doing).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from attest import guard
from attest.keys import load_private_key, write_key_pair
from attest.signing import KeySigner, sign_model


@dataclass(frozen=True)
class Publisher:
    key: Path
    policy: Path


@pytest.fixture(scope="module")
def publisher(tmp_path_factory: pytest.TempPathFactory) -> Publisher:
    root = tmp_path_factory.mktemp("publisher")
    write_key_pair(root / "publisher")
    policy = root / "policy.yaml"
    policy.write_text(
        "apiVersion: model-attest.dev/policy/v1\n"
        "signers:\n  publisher:\n    - keyFile: publisher.pub\n"
        "require:\n  - predicateType: https://model-attest.dev/model-manifest/v1\n    signedBy: [publisher]\n"
    )
    return Publisher(root / "publisher.key", policy)


def sign(pub: Publisher, folder: Path, name: str = "org/model") -> Path:
    bundle = sign_model(KeySigner(load_private_key(pub.key)), folder, name=name)
    (folder / "manifest.sigstore.json").write_text(json.dumps(bundle))
    return folder


@contextmanager
def guarded(pub: Publisher) -> Iterator[None]:
    guard.install(policy=pub.policy)
    try:
        yield
    finally:
        guard.uninstall()


def assert_refused(load: Callable[[], Any], *names: str) -> str:
    """The load raises ModelRefused with a one-line message naming each of ``names``."""
    with pytest.raises(guard.ModelRefused) as caught:
        load()
    message = str(caught.value)
    assert "\n" not in message and message.startswith("refusing to load ")
    for name in names:
        assert name in message, message
    return message


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------------
# transformers: remote code through every trust_remote_code path

_REMOTE = {  # module -> (transformers base class, auto class key, config file)
    "configuration_planted": ("PretrainedConfig", "AutoConfig", "config.json"),
    "fe_planted": ("FeatureExtractionMixin", "AutoFeatureExtractor", "preprocessor_config.json"),
    "ip_planted": ("ImageProcessingMixin", "AutoImageProcessor", "preprocessor_config.json"),
    "proc_planted": ("FeatureExtractionMixin", "AutoProcessor", "processor_config.json"),
}


def _remote_code(module: str, base: str, value: str, marker: Path | None) -> str:
    write = f"pathlib.Path({str(marker / module)!r}).write_text('ran')\n" if marker else ""
    extra = "    model_type = 'planted'\n" if base == "PretrainedConfig" else ""
    return (
        f"import pathlib\n{write}from transformers import {base}\n\n\n"
        f"class Planted({base}):\n{extra}    VALUE = {value!r}\n"
    )


_MODEL_CODE = {  # AutoModel and AutoTokenizer remote code: classes that really load
    "modeling_planted": (
        "import torch\nfrom transformers import PreTrainedModel\n"
        "from .configuration_planted import Planted as PlantedConfig\n\n\n"
        "class Planted(PreTrainedModel):\n    config_class = PlantedConfig\n    VALUE = {value!r}\n\n"
        "    def __init__(self, config):\n        super().__init__(config)\n"
        "        self.w = torch.nn.Linear(1, 1)\n        self.post_init()\n"
    ),
    "tokenization_planted": (
        "from transformers import PreTrainedTokenizer\n\n\n"
        "class Planted(PreTrainedTokenizer):\n    VALUE = {value!r}\n\n"
        "    def __init__(self, **kwargs):\n        self._vocab = {{'<unk>': 0, 'a': 1}}\n"
        "        super().__init__(unk_token='<unk>', **kwargs)\n\n"
        "    @property\n    def vocab_size(self):\n        return len(self._vocab)\n\n"
        "    def get_vocab(self):\n        return dict(self._vocab)\n\n"
        "    def _tokenize(self, text):\n        return text.split()\n\n"
        "    def _convert_token_to_id(self, token):\n        return self._vocab.get(token, 0)\n\n"
        "    def _convert_id_to_token(self, index):\n        return '<unk>'\n\n"
        "    def save_vocabulary(self, folder, prefix=None):\n        return ()\n"
    ),
}


def _model_code(module: str, value: str, marker: Path | None) -> str:
    write = f"import pathlib\npathlib.Path({str(marker / module)!r}).write_text('ran')\n" if marker else ""
    return write + _MODEL_CODE[module].format(value=value)


def build_remote_code_model(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    configs: dict[str, dict[str, Any]] = {
        "config.json": {"model_type": "planted", "auto_map": {}},
        "preprocessor_config.json": {
            "feature_extractor_type": "Planted",
            "image_processor_type": "Planted",
            "auto_map": {},
        },
        "processor_config.json": {"processor_class": "Planted", "auto_map": {}},
    }
    for module, (base, auto, config) in _REMOTE.items():
        (folder / f"{module}.py").write_text(_remote_code(module, base, "verified", None))
        configs[config]["auto_map"][auto] = f"{module}.Planted"
    configs["config.json"]["auto_map"]["AutoModel"] = "modeling_planted.Planted"
    configs["tokenizer_config.json"] = {
        "tokenizer_class": "Planted",
        "auto_map": {"AutoTokenizer": ["tokenization_planted.Planted", None]},
    }
    for module in _MODEL_CODE:
        (folder / f"{module}.py").write_text(_model_code(module, "verified", None))
    weights = {"w.weight": torch.tensor([[2.0]]), "w.bias": torch.tensor([0.0])}
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    for name, doc in configs.items():
        (folder / name).write_text(json.dumps(doc))
    return folder


def test_remote_code_runs_only_from_a_verified_folder(tmp_path: Path, publisher: Publisher) -> None:
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    good = sign(publisher, build_remote_code_model(tmp_path / unique("rc_good")))
    bad = tmp_path / unique("rc_bad")
    shutil.copytree(good, bad)
    markers = tmp_path / "markers"
    markers.mkdir()
    for module, (base, _, _) in _REMOTE.items():  # the signed code replaced by planted code
        (bad / f"{module}.py").write_text(_remote_code(module, base, "planted", markers))
    for module in _MODEL_CODE:
        (bad / f"{module}.py").write_text(_model_code(module, "planted", markers))

    def loaders(folder: Path) -> dict[str, Callable[[], Any]]:
        return {
            "AutoModel": lambda: transformers.AutoModel.from_pretrained(folder, trust_remote_code=True),
            "AutoTokenizer": lambda: transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=True
            ),
            "AutoConfig": lambda: transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True),
            "AutoFeatureExtractor": lambda: transformers.AutoFeatureExtractor.from_pretrained(
                folder, trust_remote_code=True
            ),
            "AutoImageProcessor": lambda: transformers.AutoImageProcessor.from_pretrained(
                folder, trust_remote_code=True
            ),
            "AutoProcessor": lambda: transformers.AutoProcessor.from_pretrained(
                folder, trust_remote_code=True
            ),
            "get_class_from_dynamic_module": lambda: get_class_from_dynamic_module(
                "configuration_planted.Planted", folder
            ),
            "pipeline": lambda: transformers.pipeline(
                "feature-extraction", model=str(folder), trust_remote_code=True
            ),
        }

    with guarded(publisher):
        for name, load in loaders(bad).items():
            message = assert_refused(load, "MODEL_FILES_CHANGED", "_planted.py")
            assert str(bad) in message, name
        assert list(markers.iterdir()) == []  # no planted line ran
        for name, load in loaders(good).items():
            if name == "pipeline":
                continue  # a feature extractor is not a pipeline model: the verified case is above
            loaded = load()
            assert getattr(loaded, "VALUE", None) == "verified", name
        assert list(markers.iterdir()) == []

    # control: without the guard the planted code runs and is what loads
    for name, load in loaders(bad).items():
        if name == "pipeline":
            continue
        assert getattr(load(), "VALUE", None) == "planted", name
    assert sorted(p.name for p in markers.iterdir()) == sorted([*_REMOTE, *_MODEL_CODE])


# --------------------------------------------------------------------------------------------------
# transformers weights: Auto classes, pipelines, subfolder= escapes, GGUF through gguf_file=

POISON = 1234.0


def poison_llama(folder: Path) -> None:
    """Change one weight in place, keeping the file a valid checkpoint (what an attacker would do)."""
    import safetensors.torch

    weights = folder / "model.safetensors"
    tensors = safetensors.torch.load_file(weights)
    key = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    tensors[key][0, 0] = POISON
    safetensors.torch.save_file(tensors, weights, metadata={"format": "pt"})


def embed00(model: Any) -> float:
    return float(model.get_input_embeddings().weight[0, 0])


def test_weights_pipelines_and_subfolder_escape(
    tmp_path: Path, tiny_llama_template: Path, publisher: Publisher
) -> None:
    import transformers

    good = sign(publisher, shutil.copytree(tiny_llama_template, tmp_path / "good"))
    bad = shutil.copytree(good, tmp_path / "bad")
    poison_llama(bad)
    outside = shutil.copytree(tiny_llama_template, tmp_path / "outside")  # never signed
    poison_llama(outside)
    auto = transformers.AutoModelForCausalLM

    with guarded(publisher):
        assert_refused(lambda: auto.from_pretrained(bad), "MODEL_FILES_CHANGED", "model.safetensors")
        assert_refused(lambda: transformers.LlamaForCausalLM.from_pretrained(bad), "model.safetensors")
        assert_refused(lambda: transformers.pipeline("text-generation", model=str(bad)), "model.safetensors")
        assert_refused(lambda: auto.from_pretrained(good, subfolder="../outside"), "subfolder", "leaves")
        assert_refused(
            lambda: transformers.AutoTokenizer.from_pretrained(
                good, tokenizer_file=str(outside / "tokenizer.json")
            ),
            "tokenizer_file",
        )
        assert embed00(auto.from_pretrained(good)) != POISON
        pipe = transformers.pipeline("text-generation", model=str(good))
        assert embed00(pipe.model) != POISON

    # controls: unguarded, each of these loads the poisoned weight
    assert embed00(auto.from_pretrained(bad)) == POISON
    assert embed00(auto.from_pretrained(good, subfolder="../outside")) == POISON
    assert embed00(transformers.pipeline("text-generation", model=str(bad)).model) == POISON


def write_gguf(path: Path, layers: int) -> Path:
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(32)
    writer.add_embedding_length(16)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(32)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(10)
    writer.add_tensor("token_embd.weight", np.zeros((10, 16), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_file_is_verified_and_cannot_escape(tmp_path: Path, publisher: Publisher) -> None:
    import transformers

    pytest.importorskip("gguf")
    good = tmp_path / "good"
    good.mkdir()
    write_gguf(good / "tiny.gguf", layers=2)
    sign(publisher, good)
    bad = shutil.copytree(good, tmp_path / "bad")
    write_gguf(bad / "tiny.gguf", layers=7)
    (tmp_path / "elsewhere").mkdir()
    write_gguf(tmp_path / "elsewhere" / "tiny.gguf", layers=7)

    def config(*args: Any, **kwargs: Any) -> Any:
        return transformers.AutoConfig.from_pretrained(*args, **kwargs)

    with guarded(publisher):
        assert_refused(lambda: config(bad, gguf_file="tiny.gguf"), "MODEL_FILES_CHANGED", "tiny.gguf")
        assert_refused(lambda: config(good, gguf_file="../elsewhere/tiny.gguf"), "gguf_file", "leaves")
        assert config(good, gguf_file="tiny.gguf").num_hidden_layers == 2

    assert config(bad, gguf_file="tiny.gguf").num_hidden_layers == 7
    assert config(good, gguf_file="../elsewhere/tiny.gguf").num_hidden_layers == 7


# --------------------------------------------------------------------------------------------------
# pickles: torch.load / torch.serialization.load, torch.jit.load, numpy.load(allow_pickle), joblib


class _Planted:
    """Unpickling this runs code: it writes the marker (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def build_pickles(folder: Path, planted: Path | None) -> Path:
    import joblib
    import numpy as np
    import torch

    folder.mkdir(exist_ok=True)
    payload: Any = _Planted(planted / "torch") if planted else {"value": "verified"}
    torch.save(payload, folder / "model.pt")
    array = np.empty(1, dtype=object)
    array[0] = _Planted(planted / "numpy") if planted else "verified"
    np.save(folder / "array.npy", array, allow_pickle=True)
    joblib.dump(_Planted(planted / "joblib") if planted else {"value": "verified"}, folder / "model.joblib")

    class Scripted(torch.nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.value

    torch.jit.save(torch.jit.script(Scripted(666.0 if planted else 1.0)), folder / "scripted.pt")
    return folder


def test_pickle_loaders(tmp_path: Path, publisher: Publisher) -> None:
    import joblib
    import numpy as np
    import torch

    good = sign(publisher, build_pickles(tmp_path / "good", None))
    bad = shutil.copytree(good, tmp_path / "bad")
    markers = tmp_path / "markers"
    markers.mkdir()
    build_pickles(bad, markers)  # same names, planted content; the signed manifest is the good one's

    def loaders(folder: Path) -> dict[str, Callable[[], Any]]:
        return {
            "torch.load": lambda: torch.load(folder / "model.pt", weights_only=False),
            "torch.serialization.load": lambda: torch.serialization.load(
                str(folder / "model.pt"), weights_only=False
            ),
            "numpy.load": lambda: np.load(folder / "array.npy", allow_pickle=True)[0],
            "joblib.load": lambda: joblib.load(folder / "model.joblib"),
            "torch.jit.load": lambda: float(torch.jit.load(str(folder / "scripted.pt"))(torch.zeros(1))[0]),
        }

    with guarded(publisher):
        for _name, load in loaders(bad).items():
            assert_refused(load, "MODEL_FILES_CHANGED", str(bad))
        assert list(markers.iterdir()) == []
        got = {name: load() for name, load in loaders(good).items()}
        assert got == {
            "torch.load": {"value": "verified"},
            "torch.serialization.load": {"value": "verified"},
            "numpy.load": "verified",
            "joblib.load": {"value": "verified"},
            "torch.jit.load": 1.0,
        }
        # a plain array (no pickle) is data, not code: numpy.load without allow_pickle is not guarded
        np.save(tmp_path / "plain.npy", np.arange(3))
        assert np.load(tmp_path / "plain.npy").tolist() == [0, 1, 2]

    unguarded = {name: load() for name, load in loaders(bad).items()}
    assert unguarded["torch.jit.load"] == 666.0
    assert sorted(p.name for p in markers.iterdir()) == ["joblib", "numpy", "torch"]


# --------------------------------------------------------------------------------------------------
# safetensors: every entry point


def test_every_safetensors_entry_point(tmp_path: Path, publisher: Publisher) -> None:
    import numpy as np
    import safetensors
    import safetensors.numpy
    import safetensors.torch

    good = tmp_path / "good"
    good.mkdir()
    safetensors.numpy.save_file({"w": np.array([1.0], dtype=np.float32)}, good / "w.safetensors")
    sign(publisher, good)
    bad = shutil.copytree(good, tmp_path / "bad")
    safetensors.numpy.save_file({"w": np.array([POISON], dtype=np.float32)}, bad / "w.safetensors")

    def loaders(folder: Path) -> dict[str, Callable[[], float]]:
        f = folder / "w.safetensors"

        def opened(open_: Any, framework: str) -> float:
            with open_(f, framework=framework) as handle:
                return float(handle.get_tensor("w")[0])

        out: dict[str, Callable[[], float]] = {
            "safetensors.torch.load_file": lambda: float(safetensors.torch.load_file(f)["w"][0]),
            "safetensors.numpy.load_file": lambda: float(safetensors.numpy.load_file(f)["w"][0]),
            "safetensors.safe_open(pt)": lambda: opened(safetensors.safe_open, "pt"),
            "safetensors.safe_open(np)": lambda: opened(safetensors.safe_open, "np"),
            "safetensors.torch.safe_open": lambda: opened(safetensors.torch.safe_open, "pt"),
            "safetensors.numpy.safe_open": lambda: opened(safetensors.numpy.safe_open, "np"),
        }
        try:
            flax = importlib.import_module("safetensors.flax")
            out["safetensors.flax.load_file"] = lambda: float(flax.load_file(f)["w"][0])
        except ImportError:  # jax is not installed: that module cannot be imported, so cannot load
            pass
        return out

    with guarded(publisher):
        for _name, load in loaders(bad).items():
            assert_refused(load, "MODEL_FILES_CHANGED", "w.safetensors")
        assert {name: load() for name, load in loaders(good).items()} == dict.fromkeys(loaders(good), 1.0)
    assert {name: load() for name, load in loaders(bad).items()} == dict.fromkeys(loaders(bad), POISON)


# --------------------------------------------------------------------------------------------------
# Hub ids through the local Hugging Face cache (offline)


def make_hf_cache(cache: Path, repo_id: str, source: Path) -> tuple[Path, str]:
    """Lay ``source`` out as the hub client does: blobs by sha256, snapshot links, refs/main."""
    import hashlib

    repo = cache / ("models--" + repo_id.replace("/", "--"))
    revision = hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / revision
    (repo / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(source.iterdir()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snap, revision


def test_hub_ids_resolve_through_the_local_cache(
    tmp_path: Path, tiny_llama_template: Path, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    signed = sign(publisher, shutil.copytree(tiny_llama_template, tmp_path / "src"), name="org/tiny")
    cache = tmp_path / "hub"
    snap, revision = make_hf_cache(cache, "org/tiny", signed)

    def load(*args: Any, **kwargs: Any) -> Any:
        return transformers.AutoModelForCausalLM.from_pretrained(*args, **kwargs)

    with guarded(publisher):
        assert embed00(load("org/tiny", cache_dir=cache)) != POISON
        assert embed00(load("org/tiny", cache_dir=cache, revision=revision)) != POISON
        monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # the environment's cache works the same
        assert transformers.AutoConfig.from_pretrained("org/tiny").num_hidden_layers == 2
        assert_refused(lambda: load("org/absent", cache_dir=cache), "org/absent", "not in the local")

    # the blob behind the snapshot link is swapped: a poisoned checkpoint in the cache
    poisoned = shutil.copytree(tmp_path / "src", tmp_path / "poisoned")
    poison_llama(poisoned)
    (snap / "model.safetensors").resolve().write_bytes((poisoned / "model.safetensors").read_bytes())

    with guarded(publisher):
        assert_refused(lambda: load("org/tiny", cache_dir=cache), "MODEL_FILES_CHANGED", "model.safetensors")
    assert embed00(load("org/tiny", cache_dir=cache, local_files_only=True)) == POISON


# --------------------------------------------------------------------------------------------------
# diffusers and sentence-transformers


def test_diffusers_from_pretrained(tmp_path: Path, publisher: Publisher) -> None:
    diffusers = pytest.importorskip("diffusers")
    import torch

    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=(8,),
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
        norm_num_groups=4,
    )
    good = tmp_path / "good"
    unet.save_pretrained(good)
    sign(publisher, good)
    bad = shutil.copytree(good, tmp_path / "bad")
    with torch.no_grad():
        unet.conv_in.weight[0, 0, 0, 0] = POISON
    unet.save_pretrained(bad)

    def first(model: Any) -> float:
        return float(model.conv_in.weight[0, 0, 0, 0])

    with guarded(publisher):
        assert_refused(
            lambda: diffusers.UNet2DModel.from_pretrained(bad),
            "MODEL_FILES_CHANGED",
            "diffusion_pytorch_model",
        )
        assert_refused(lambda: diffusers.UNet2DModel.load_config(bad), "MODEL_FILES_CHANGED")
        assert first(diffusers.UNet2DModel.from_pretrained(good)) != POISON
    assert first(diffusers.UNet2DModel.from_pretrained(bad)) == POISON


def test_sentence_transformers(tmp_path: Path, tiny_llama_template: Path, publisher: Publisher) -> None:
    st = pytest.importorskip("sentence_transformers")
    import torch

    base = shutil.copytree(tiny_llama_template, tmp_path / "base")
    from sentence_transformers.base.modules.transformer import Transformer
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    model = st.SentenceTransformer(modules=[Transformer(str(base)), Pooling(16)])
    model.tokenizer.pad_token = "<unk>"
    good = tmp_path / "good"
    model.save(str(good))
    sign(publisher, good)
    bad = shutil.copytree(good, tmp_path / "bad")
    poison_llama(bad)

    def first(m: Any) -> float:
        return float(m[0].auto_model.get_input_embeddings().weight[0, 0])

    with guarded(publisher):
        assert_refused(lambda: st.SentenceTransformer(str(bad)), "MODEL_FILES_CHANGED", "model.safetensors")
        loaded = st.SentenceTransformer(str(good))
        assert first(loaded) != POISON
        assert tuple(loaded.encode(["hello world"], convert_to_tensor=True).shape) == (1, 16)
        assert isinstance(loaded.encode(["hello"], convert_to_tensor=True), torch.Tensor)
    assert first(st.SentenceTransformer(str(bad))) == POISON


# --------------------------------------------------------------------------------------------------
# the snapshot, messages, debugging


def test_snapshot_is_private_and_read_only(
    tmp_path: Path, tiny_llama_template: Path, publisher: Publisher
) -> None:
    from attest.policy import Policy

    model = sign(publisher, shutil.copytree(tiny_llama_template, tmp_path / "m"))
    copy, decision = guard.verify_snapshot(model, guard.GuardConfig(Policy.load(publisher.policy)))
    try:
        assert decision.allowed and decision.details["snapshot"] in ("reflink", "copy_file_range")
        assert (copy.parent.stat().st_mode & 0o777) == 0o700
        for f in model.iterdir():
            assert (copy / f.name).read_bytes() == f.read_bytes()
            assert not os.access(copy / f.name, os.W_OK) or os.geteuid() == 0
            assert ((copy / f.name).stat().st_mode & 0o222) == 0
    finally:
        shutil.rmtree(copy.parent)


def test_debug_says_what_was_checked(
    tmp_path: Path,
    tiny_llama_template: Path,
    publisher: Publisher,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    import safetensors.torch

    model = sign(publisher, shutil.copytree(tiny_llama_template, tmp_path / "m"))
    monkeypatch.setenv("ATTEST_GUARD_DEBUG", "1")
    with guarded(publisher):
        safetensors.torch.load_file(model / "model.safetensors")
    err = capfd.readouterr().err
    assert f"{model}: verified, loading from snapshot" in err
    assert "allowed sha256:" in err and "files" in err
    assert "safetensors.torch.load_file(" in err
    monkeypatch.delenv("ATTEST_GUARD_DEBUG")
    with guarded(publisher):
        safetensors.torch.load_file(model / "model.safetensors")
    assert "attest-guard" not in capfd.readouterr().err


def test_bad_policy_fails_at_install(tmp_path: Path) -> None:
    from attest.errors import UsageError

    bad = tmp_path / "policy.yaml"
    bad.write_text("apiVersion: model-attest.dev/policy/v1\nsigners: [\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        guard.install(policy=bad)
    import torch

    assert not getattr(torch.load, "__attest_guarded__", False)  # nothing was patched


def test_a_file_below_the_model_root_is_verified_with_its_root(tmp_path: Path, publisher: Publisher) -> None:
    """``load_file(model/sub/w.safetensors)`` verifies ``model`` (whose bundle lists the file), not
    ``model/sub`` (which has no bundle); a changed file there is still refused."""
    import numpy as np
    import safetensors.numpy

    good = tmp_path / "good"
    (good / "sub").mkdir(parents=True)
    safetensors.numpy.save_file({"w": np.array([1.0], dtype=np.float32)}, good / "sub" / "w.safetensors")
    sign(publisher, good)
    bad = shutil.copytree(good, tmp_path / "bad")
    safetensors.numpy.save_file({"w": np.array([POISON], dtype=np.float32)}, bad / "sub" / "w.safetensors")

    def load(folder: Path) -> float:
        return float(safetensors.numpy.load_file(folder / "sub" / "w.safetensors")["w"][0])

    with guarded(publisher):
        assert load(good) == 1.0
        assert_refused(lambda: load(bad), str(bad), "MODEL_FILES_CHANGED", "sub/w.safetensors")
    assert load(bad) == POISON


def test_the_hash_taken_while_copying_does_not_outlive_a_change(
    tmp_path: Path, tiny_llama_template: Path, publisher: Publisher
) -> None:
    """The snapshot is hashed while it is copied and the verifier reuses that digest; a later change
    to a snapshot file (same size, mtime put back) must be hashed again, not answered from memory."""
    import hashlib

    from attest import hashing
    from attest.policy import Policy

    model = sign(publisher, shutil.copytree(tiny_llama_template, tmp_path / "m"))
    copy, _ = guard.verify_snapshot(model, guard.GuardConfig(Policy.load(publisher.policy)))
    try:
        weights = copy / "model.safetensors"
        remembered = hashing.sha256_file(weights)
        assert remembered == hashlib.sha256(weights.read_bytes()).hexdigest()
        st = weights.stat()
        weights.chmod(0o600)
        data = bytearray(weights.read_bytes())
        data[-1] ^= 1
        weights.write_bytes(bytes(data))
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert hashing.sha256_file(weights) == hashlib.sha256(bytes(data)).hexdigest() != remembered
    finally:
        shutil.rmtree(copy.parent)


def test_a_folder_without_bundles_is_refused_before_any_copy(
    tmp_path: Path, publisher: Publisher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``torch.load(~/Downloads/x.pt)`` must not snapshot all of ``~/Downloads`` first."""
    import torch

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    torch.save({"value": 1}, downloads / "x.pt")
    (downloads / "big.bin").write_bytes(b"\0" * (1 << 20))
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    monkeypatch.setenv("ATTEST_SNAPSHOT_DIR", str(snapshots))
    with guarded(publisher):
        assert_refused(lambda: torch.load(downloads / "x.pt"), "MISSING_ATTESTATION", "no attestation bundle")
    assert list(snapshots.iterdir()) == []
    assert torch.load(downloads / "x.pt") == {"value": 1}
