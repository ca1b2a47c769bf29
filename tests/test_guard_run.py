"""``attest run`` fails closed (issue 13, "Fail closed"): real CLI, real interpreters, real children.

The programs load weights with ``safetensors.numpy`` (no torch import: each run stays ~2 s). Every
program writes a marker as its first line, so "the program did not start" is checked, not assumed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.core_fixtures import REPO
from tests.test_guard_paths import POISON, Publisher, publisher, sign

__all__ = ["publisher"]  # the fixture, re-used

BOOT = REPO / "attest" / "_guard_boot"

LOAD = """\
import pathlib, sys
pathlib.Path(sys.argv[1]).write_text("started")
import safetensors.numpy
for model in sys.argv[2:]:
    print("value", float(safetensors.numpy.load_file(model + "/w.safetensors")["w"][0]), flush=True)
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, publisher: Publisher) -> tuple[Path, Path]:
    """(verified, tampered): the same signed folder, the second with a changed weight."""
    import numpy as np
    import safetensors.numpy

    root = tmp_path_factory.mktemp("run-models")
    good, bad = root / "good", root / "bad"
    good.mkdir()
    safetensors.numpy.save_file({"w": np.array([1.0], dtype=np.float32)}, good / "w.safetensors")
    sign(publisher, good)
    bad.mkdir()
    for f in good.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    safetensors.numpy.save_file({"w": np.array([POISON], dtype=np.float32)}, bad / "w.safetensors")
    return good, bad


def attest_run(
    policy: Path | str, *command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "run", "--policy", str(policy), "--", *map(str, command)],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def assert_guarded(done: subprocess.CompletedProcess[str], marker: Path, bad: Path) -> None:
    """Started, loaded the verified model, refused the tampered one on one line, exit 1."""
    assert marker.exists(), done.stderr
    assert "value 1.0" in done.stdout, done.stderr
    assert str(POISON) not in done.stdout
    assert done.returncode == 1, done.stderr
    refusal = [line for line in done.stderr.splitlines() if line.startswith("attest: refusing to load")]
    assert len(refusal) == 1, done.stderr
    assert str(bad) in refusal[0] and "MODEL_FILES_CHANGED" in refusal[0] and "w.safetensors" in refusal[0]
    assert "Traceback" not in done.stderr


def test_bad_policy_or_unguardable_program_never_starts(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    _, bad = models
    program = tmp_path / "load.py"
    program.write_text(LOAD)
    marker = tmp_path / "started"
    bad_yaml = tmp_path / "bad-yaml.yaml"
    bad_yaml.write_text("apiVersion: model-attest.dev/policy/v1\nsigners: [\n")
    bad_schema = tmp_path / "bad-schema.yaml"
    bad_schema.write_text("apiVersion: model-attest.dev/policy/v1\nsigners: {}\nrequire: 5\n")
    shell = tmp_path / "load.sh"
    shell.write_text(f"#!/bin/sh\ntouch {marker}\n")
    shell.chmod(0o755)
    renamed_launcher = tmp_path / "my-launcher"
    renamed_launcher.write_text(
        f"#!{sys.executable}\nimport sys\nfrom torch.distributed.run import main\nsys.exit(main())\n"
    )
    renamed_launcher.chmod(0o755)
    cases: list[tuple[Path | str, list[str | Path], int, str]] = [
        (bad_yaml, [sys.executable, program, marker, bad], 2, "not valid YAML"),
        (bad_schema, [sys.executable, program, marker, bad], 2, "policy"),
        (tmp_path / "absent.yaml", [sys.executable, program, marker, bad], 2, "absent.yaml"),
        (publisher.policy, [shell], 3, "not a Python program"),
        (publisher.policy, ["torchrun", program, marker, bad], 3, "torchrun"),
        (publisher.policy, [sys.executable, "-m", "torch.distributed.run", program], 3, "worker processes"),
        (publisher.policy, [renamed_launcher, program], 3, "torch.distributed.run"),
        (publisher.policy, [sys.executable], 2, "interactive"),
        (publisher.policy, [sys.executable, "-"], 2, "standard input"),
    ]
    for policy, command, code, words in cases:
        done = attest_run(policy, *command)
        assert done.returncode == code, (command, done.stderr)
        assert words in done.stderr, (command, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        assert not marker.exists(), command


def test_every_way_of_starting_python_is_guarded(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    good, bad = models
    (tmp_path / "load.py").write_text(LOAD)
    pkg = tmp_path / "loadmod"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(LOAD)
    (pkg / "cli.py").write_text(
        "def main():\n    exec(open(__file__.replace('cli.py', '__main__.py')).read())\n"
    )
    console = tmp_path / "load-tool"  # what pip writes for a console-script entry point
    console.write_text(
        f"#!{sys.executable}\nimport re, sys\nsys.path.insert(0, {str(tmp_path)!r})\n"
        "from loadmod.cli import main\nif __name__ == '__main__':\n    sys.exit(main())\n"
    )
    console.chmod(0o755)
    variants: dict[str, list[str | Path]] = {
        "script": [sys.executable, "load.py"],
        "-I": [sys.executable, "-I", tmp_path / "load.py"],
        "-E": [sys.executable, "-E", "load.py"],
        "-IsBu": [sys.executable, "-IsBu", tmp_path / "load.py"],  # combined flags
        "-W/-X": [sys.executable, "-W", "ignore", "-Xutf8", "load.py"],
        "-m": [sys.executable, "-m", "loadmod"],
        "-c": [sys.executable, "-c", LOAD],
        "console script": [console],
    }
    for i, command in enumerate(variants.values()):
        marker = tmp_path / f"started-{i}"
        done = attest_run(publisher.policy, *command, marker, good, bad, cwd=tmp_path)
        assert_guarded(done, marker, bad)

    # control: the same program without the guard loads the tampered weight
    plain = subprocess.run(
        [sys.executable, tmp_path / "load.py", tmp_path / "m", good, bad], capture_output=True, text=True
    )
    assert plain.returncode == 0 and f"value {POISON}" in plain.stdout, plain.stderr


def test_another_venv_that_cannot_import_attest(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    """The program's interpreter sees numpy and safetensors but not attest: the guard still holds,
    because the hooks are loaded by path and verification runs in attest's own interpreter."""
    import safetensors

    good, bad = models
    venv = tmp_path / "other-venv"
    base = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([base, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # a path entry, not a site dir: attest's editable-install hook (a .pth there) is not processed
    (site / "deps.pth").write_text(str(Path(safetensors.__file__).parents[1]) + "\n")
    python = venv / "bin" / "python"
    probe = subprocess.run(
        [
            python,
            "-c",
            "import safetensors.numpy\ntry:\n import attest\nexcept ImportError: print('no attest')",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "no attest", probe.stderr
    program = tmp_path / "load.py"
    program.write_text(LOAD)
    marker = tmp_path / "started"
    assert_guarded(
        attest_run(publisher.policy, python, program, marker, good, bad, cwd=tmp_path), marker, bad
    )
    plain = subprocess.run([python, program, marker, bad], capture_output=True, text=True, cwd=tmp_path)
    assert f"value {POISON}" in plain.stdout, plain.stderr


CHILDREN = """\
import multiprocessing as mp, pathlib, subprocess, sys

def load(model):
    import safetensors.numpy
    try:
        return float(safetensors.numpy.load_file(model + "/w.safetensors")["w"][0])
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"

if __name__ == "__main__":
    pathlib.Path(sys.argv[1]).write_text("started")
    good, bad = sys.argv[2], sys.argv[3]
    with mp.get_context("spawn").Pool(1) as pool:
        print("spawn", pool.map(load, [good, bad]), flush=True)
    with mp.get_context("forkserver").Pool(1) as pool:
        print("forkserver", pool.map(load, [good, bad]), flush=True)
    child = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, %r); import children; print(children.load(%r))" % (str(pathlib.Path(__file__).parent), bad)], capture_output=True, text=True)
    print("subprocess", child.returncode, child.stdout.strip(), flush=True)
    # children that would skip sitecustomize: isolated, ignoring the environment, or with none
    load_py = str(pathlib.Path(__file__).with_name("load.py"))
    for name, argv, env in (
        ("isolated", [sys.executable, "-I", load_py, sys.argv[1] + "-i", bad], None),
        ("no-env", [sys.executable, "-E", "-c", open(load_py).read(), sys.argv[1] + "-e", bad], {"PATH": "/usr/bin"}),
    ):
        child = subprocess.run(argv, capture_output=True, text=True, env=env)
        refusal = [l for l in child.stderr.splitlines() if l.startswith("attest: refusing")]
        print(name, child.returncode, child.stdout.strip() or "-", "|", refusal[0] if refusal else "-", flush=True)
"""


def test_child_processes_inherit_the_guard(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    good, bad = models
    program = tmp_path / "children.py"
    program.write_text(CHILDREN)
    (tmp_path / "load.py").write_text(LOAD)
    marker = tmp_path / "started"
    done = attest_run(publisher.policy, sys.executable, program, marker, good, bad, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    for kind in ("isolated", "no-env"):  # started through the bootstrap: refused, exit 1, one line
        code, out, refusal = lines[kind].split(" ", 2)[0], *lines[kind].split(" ", 1)[1].split(" | ")
        assert code == "1" and out == "-" and "MODEL_FILES_CHANGED" in refusal, lines[kind]
    for kind in ("spawn", "forkserver"):
        assert lines[kind].startswith("[1.0, 'ModelRefused: refusing to load"), done.stdout
        assert "MODEL_FILES_CHANGED" in lines[kind] and str(POISON) not in lines[kind]
    assert lines["subprocess"].startswith("0 ModelRefused: refusing to load"), done.stdout

    plain = subprocess.run([sys.executable, program, marker, good, bad], capture_output=True, text=True)
    assert f"spawn [1.0, {POISON}]" in plain.stdout and f"subprocess 0 {POISON}" in plain.stdout, plain.stderr
    assert f"isolated 0 value {POISON}" in plain.stdout and f"no-env 0 value {POISON}" in plain.stdout


def test_dataloader_spawn_workers_inherit_the_guard(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    good, bad = models
    program = tmp_path / "workers.py"
    program.write_text(
        textwrap.dedent(
            """\
            import sys, torch
            from torch.utils.data import DataLoader, Dataset

            class Weights(Dataset):
                def __init__(self, model):
                    self.model = model
                def __len__(self):
                    return 1
                def __getitem__(self, i):
                    import safetensors.torch
                    return safetensors.torch.load_file(self.model + "/w.safetensors")["w"]

            if __name__ == "__main__":
                for model in sys.argv[1:]:
                    for batch in DataLoader(Weights(model), num_workers=1, multiprocessing_context="spawn"):
                        print("value", float(batch[0][0]), flush=True)
            """
        )
    )
    done = attest_run(publisher.policy, sys.executable, program, good, bad, cwd=tmp_path)
    assert "value 1.0" in done.stdout, done.stderr  # the verified model loads in the worker
    assert done.returncode != 0 and str(POISON) not in done.stdout
    assert "refusing to load" in done.stderr and "MODEL_FILES_CHANGED" in done.stderr


def test_bootstrap_and_children_fail_closed_when_the_guard_cannot_install(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    spec = tmp_path / "spec.json"
    spec.write_text('{"hooks": "/nonexistent/hooks.py", "kind": "code", "target": "x"}')
    boot = subprocess.run(
        [sys.executable, BOOT / "boot.py", spec, "-c", f"open({str(marker)!r}, 'w')"],
        capture_output=True,
        text=True,
    )
    assert boot.returncode == 3 and "cannot protect this program" in boot.stderr, boot.stderr
    child = subprocess.run(
        [sys.executable, "-c", f"open({str(marker)!r}, 'w')"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "ATTEST_GUARD_SPEC": str(tmp_path / "absent.json"),
            "PYTHONPATH": str(BOOT / "site"),
        },
    )
    assert child.returncode == 3 and "cannot protect this process" in child.stderr, child.stderr
    assert not marker.exists()


def test_exit_status_argv_debug_and_cleanup(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    good, _ = models
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    program = tmp_path / "prog.py"
    program.write_text(
        "import os, signal, sys, safetensors.numpy\n"
        "safetensors.numpy.load_file(sys.argv[2] + '/w.safetensors')\n"
        "print('argv', sys.argv[1:], flush=True)\n"
        "if sys.argv[1] == 'kill':\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    env = {"ATTEST_SNAPSHOT_DIR": str(snapshots), "ATTEST_GUARD_DEBUG": "1"}
    done = attest_run(publisher.policy, sys.executable, program, "7", good, "--policy", "x", env=env)
    assert done.returncode == 7, done.stderr
    assert f"argv ['7', '{good}', '--policy', 'x']" in done.stdout
    assert f"{good}: verified, loading from snapshot" in done.stderr and "allowed sha256:" in done.stderr
    assert "patched safetensors.numpy.load_file" in done.stderr
    killed = attest_run(publisher.policy, sys.executable, program, "kill", good, env=env)
    assert killed.returncode == 128 + 9, killed.stderr
    assert list(snapshots.iterdir()) == []  # the verified snapshots went with the program


def test_a_second_run_loads_from_the_verified_store(
    tmp_path: Path, publisher: Publisher, models: tuple[Path, Path]
) -> None:
    """The verifier ``attest run`` calls keeps what it hashed in the store: the next run of the same,
    unchanged model hashes nothing, while the tampered copy beside it is still hashed and refused."""
    good, bad = models
    store = tmp_path / "store"
    program = tmp_path / "prog.py"
    program.write_text(LOAD)
    env = {"ATTEST_GUARD_STORE": str(store), "ATTEST_GUARD_DEBUG": "1", "ATTEST_SNAPSHOT_DIR": ""}
    runs = [
        attest_run(publisher.policy, sys.executable, program, tmp_path / "marker", good, env=env)
        for _ in "12"
    ]
    for done in runs:
        assert done.returncode == 0 and "value 1.0" in done.stdout, done.stderr
    assert "0 of 2 from the verified store" in runs[0].stderr
    assert "2 of 2 from the verified store, 0 bytes hashed" in runs[1].stderr
    assert list((store / "tmp").iterdir()) == []  # the run's snapshots went with it
    refused = attest_run(publisher.policy, sys.executable, program, tmp_path / "marker", bad, env=env)
    assert refused.returncode == 1 and "MODEL_FILES_CHANGED" in refused.stderr, refused.stderr
    assert "value" not in refused.stdout
    # control: --no-store hashes everything again, though the store holds the model
    program_argv = [sys.executable, str(program), str(tmp_path / "marker"), str(good)]
    fresh = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "run",
            "--no-store",
            "--policy",
            str(publisher.policy),
            "--",
            *program_argv,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **env},
        timeout=300,
    )
    assert fresh.returncode == 0 and "value 1.0" in fresh.stdout, fresh.stderr
    assert "0 of 2 from the verified store" in fresh.stderr and "store: off" in fresh.stderr
