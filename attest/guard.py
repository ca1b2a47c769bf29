"""Verify-before-load hooks: transformers, safetensors and torch refuse a model that does not verify.

Why a private snapshot: verifying files in place and then letting a loader read them again leaves a
window in which they can change (model-signing's fault 9). The guard instead copies the model folder
into a private directory, verifies *that copy* against the policy, and points the loader at it, so the
bytes loaded are the bytes verified. Snapshots live until the process exits (loaders memory-map them).

Where attestations come from: ``*.sigstore.json`` bundles inside the model folder (``attest pull``
writes them there), plus, when a registry is configured, every attestation the registry holds for the
model digest (verified locally with its inclusion proofs). No policy configured means no load: the
guard fails closed.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attest.errors import AttestError
from attest.model_verification import BundleInput, verify_model
from attest.policy import Decision, Policy
from attest.verifying import Trust

POLICY_ENV = "ATTEST_POLICY"
REGISTRY_ENV = "ATTEST_REGISTRY"


class ModelRefused(AttestError):
    """A loader was asked to load a model that did not verify under the configured policy."""

    exit_code = 1
    http_status = 403

    def __init__(self, path: Path | str, decision: Decision | None, why: str | None = None) -> None:
        self.decision = decision
        reasons = why or "; ".join(f"{r.code}: {r.message}" for r in (decision.reasons if decision else []))
        super().__init__(f"refusing to load {path}: {reasons or 'not verified'}")


@dataclass
class GuardConfig:
    policy: Policy | None
    trust: Trust = field(default_factory=Trust)
    registry: str | None = None


@dataclass
class _State:
    config: GuardConfig | None = None
    originals: dict[tuple[Any, str], Any] = field(default_factory=dict)
    snapshots: dict[Path, tuple[Path, Decision]] = field(default_factory=dict)  # source -> (copy, decision)
    verified_roots: set[Path] = field(default_factory=set)
    lock: threading.RLock = field(default_factory=threading.RLock)


_STATE = _State()


def verify_snapshot(source: Path | str, config: GuardConfig | None = None) -> tuple[Path, Decision]:
    """Copy ``source`` to a private snapshot, verify the copy, and return it (or raise ModelRefused)."""
    config = config or _STATE.config or config_from_env()
    source = Path(source).resolve()
    if source.is_file():
        source = source.parent
    with _STATE.lock:
        cached = _STATE.snapshots.get(source)
        if cached is not None:
            return cached
        if config.policy is None:
            raise ModelRefused(source, None, f"no verification policy configured (set {POLICY_ENV})")
        snap = Path(tempfile.mkdtemp(prefix="attest-verified-"))
        copy = snap / source.name
        try:
            shutil.copytree(source, copy, symlinks=False)
            local = [BundleInput(p.name, p.read_bytes(), p) for p in sorted(copy.glob("*.sigstore.json"))]
            decision = verify_model(copy, local, config.trust, config.policy, registry=config.registry)
        except AttestError as exc:
            shutil.rmtree(snap, ignore_errors=True)
            raise ModelRefused(source, None, exc.message) from None
        except OSError as exc:
            shutil.rmtree(snap, ignore_errors=True)
            raise ModelRefused(source, None, f"cannot snapshot: {exc}") from None
        if not decision.allowed:
            shutil.rmtree(snap, ignore_errors=True)
            raise ModelRefused(source, decision)
        atexit.register(shutil.rmtree, snap, True)
        _STATE.snapshots[source] = (copy, decision)
        _STATE.verified_roots.add(copy.resolve())
        return copy, decision


def _inside_verified(path: Path) -> bool:
    p = path.resolve()
    return any(p.is_relative_to(root) for root in _STATE.verified_roots)


def _redirect(path_like: Any) -> Any:
    """Map a path a loader was given to the same path inside a verified snapshot."""
    if not isinstance(path_like, str | os.PathLike):
        raise ModelRefused(repr(path_like), None, "only files on disk can be verified before load")
    path = Path(path_like)
    if not path.exists():
        raise ModelRefused(
            path, None, "not a local path (hub ids are refused: fetch with `attest pull` first)"
        )
    if _inside_verified(path):
        return path_like
    copy, _ = verify_snapshot(path)
    if path.resolve().is_file():
        return str(copy / path.name)
    return str(copy)


def _wrap_first_arg(func: Callable[..., Any], skip: int) -> Callable[..., Any]:
    """Wrap a loader so its path argument (after ``skip`` leading args, e.g. ``cls``) is redirected."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            args = (*args[:skip], _redirect(args[skip]), *args[skip + 1 :])
        else:
            for name in ("pretrained_model_name_or_path", "filename", "f"):
                if name in kwargs:
                    kwargs[name] = _redirect(kwargs[name])
                    break
        return func(*args, **kwargs)

    return wrapper


def _patch(owner: Any, name: str) -> None:
    key = (owner, name)
    if key in _STATE.originals:
        return
    original = vars(owner).get(name, getattr(owner, name))
    _STATE.originals[key] = original
    if isinstance(original, classmethod):
        setattr(owner, name, classmethod(_wrap_first_arg(original.__func__, 1)))
    elif isinstance(original, staticmethod):
        setattr(owner, name, staticmethod(_wrap_first_arg(original.__func__, 0)))
    else:
        setattr(owner, name, _wrap_first_arg(original, 0))


def _loader_targets() -> list[tuple[Any, str]]:
    """Every entry point that reads weights, tokenizers or configs from disk, for what is installed."""
    targets: list[tuple[Any, str]] = []
    try:
        import safetensors
        import safetensors.numpy

        targets += [(safetensors, "safe_open"), (safetensors.numpy, "load_file")]
    except ImportError:
        pass
    try:
        import torch

        targets.append((torch, "load"))
        import safetensors.torch

        targets += [(safetensors.torch, "load_file"), (safetensors.torch, "safe_open")]
    except ImportError:
        pass
    try:
        import transformers
        from transformers.models.auto.auto_factory import _BaseAutoModelClass

        targets += [
            (_BaseAutoModelClass, "from_pretrained"),
            (transformers.PreTrainedModel, "from_pretrained"),
            (transformers.AutoTokenizer, "from_pretrained"),
            (transformers.PreTrainedTokenizerBase, "from_pretrained"),
            (transformers.AutoConfig, "from_pretrained"),
            (transformers.PretrainedConfig, "from_pretrained"),
        ]
    except ImportError:
        pass
    return targets


def install(
    policy: Policy | str | Path | None = None, trust: Trust | None = None, registry: str | None = None
) -> None:
    """Install the hooks. Arguments default to ``ATTEST_POLICY`` / ``ATTEST_REGISTRY``."""
    if policy is None or registry is None:
        env = config_from_env()
        policy = policy if policy is not None else env.policy
        registry = registry or env.registry
    if isinstance(policy, str | Path):
        policy = Policy.load(policy)
    with _STATE.lock:
        _STATE.config = GuardConfig(policy, trust or Trust(), registry)
        for owner, name in _loader_targets():
            _patch(owner, name)


def uninstall() -> None:
    """Remove the hooks (snapshots already made stay until exit)."""
    with _STATE.lock:
        for (owner, name), original in _STATE.originals.items():
            setattr(owner, name, original)
        _STATE.originals.clear()
        _STATE.config = None
        _STATE.snapshots.clear()


def config_from_env() -> GuardConfig:
    policy_path = os.environ.get(POLICY_ENV)
    return GuardConfig(
        Policy.load(policy_path) if policy_path else None, Trust(), os.environ.get(REGISTRY_ENV) or None
    )
