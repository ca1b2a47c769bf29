"""Bad input through the real ``attest`` CLI: one line on stderr, the documented exit code, never a
traceback (issue 12, point 8), and ignore patterns that cannot hide what loads (point 10).

Exit codes: 0 allowed, 1 denied / not verified, 2 usage error, 3 could not decide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.core_fixtures import REPO, RunAttest
from tests.test_release_pull import MANIFEST_POLICY

FORBID_IGNORES = MANIFEST_POLICY + "    forbidIgnores: true\n"


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """The documented exit code, exactly one ``error:`` line, no traceback, the expected words."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


@pytest.fixture
def signed(model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest) -> Path:
    """The model folder with a manifest bundle beside it; returns the bundle path."""
    key, _ = keypair
    bundle = model_dir.parent / "manifest.sigstore.json"
    done = run_attest("sign", model_dir, "--key", key, "-o", bundle)
    assert done.returncode == 0, done.stderr
    return bundle


def test_sign_into_a_missing_folder(
    model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest
) -> None:
    out = model_dir.parent / "no-such-folder" / "b.sigstore.json"
    result = run_attest("sign", model_dir, "--key", keypair[0], "-o", out)
    assert_one_line_error(result, 2, str(out), "No such file or directory")
    assert ".tmp" not in result.stderr  # the message names the user's path, not our temporary file
    assert not out.parent.exists()


def test_symlink_loop_as_the_model(
    tmp_path: Path, keypair: tuple[Path, Path], signed: Path, run_attest: RunAttest
) -> None:
    (tmp_path / "loop-a").symlink_to("loop-b")
    (tmp_path / "loop-b").symlink_to("loop-a")
    result = run_attest("verify", tmp_path / "loop-a", "--key", keypair[1], "--bundle", signed)
    assert_one_line_error(result, 1, "symlink loop")


def test_non_utf8_policy(
    tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path], signed: Path, run_attest: RunAttest
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(b"apiVersion: model-attest.dev/policy/v1\nname: \xff\xfe\n")
    result = run_attest("verify", model_dir, "--bundle", signed, "--policy", policy)
    assert_one_line_error(result, 2, "not valid UTF-8")


def test_oversized_policy_refused_before_parsing(
    tmp_path: Path, model_dir: Path, signed: Path, run_attest: RunAttest
) -> None:
    policy = tmp_path / "huge.yaml"
    policy.write_bytes(b"#" * (2 * 1024 * 1024))
    result = run_attest("verify", model_dir, "--bundle", signed, "--policy", policy)
    assert_one_line_error(result, 2, "over the", "limit")


def special_file(special: str, tmp_path: Path) -> Path:
    """``/dev/zero`` (reading it never ends) or a new FIFO nobody writes to (reading it blocks forever)."""
    if special != "fifo":
        return Path(special)
    path = tmp_path / "input.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_bundle_from_a_device_or_fifo_refused(
    tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest, special: str
) -> None:
    path = special_file(special, tmp_path)
    started = time.monotonic()
    result = run_attest("verify", model_dir, "--key", keypair[1], "--bundle", path)
    assert_one_line_error(result, 2, "not a regular file")
    assert time.monotonic() - started < 60


def test_json_errors_are_a_json_object_on_stdout(model_dir: Path, run_attest: RunAttest) -> None:
    result = run_attest("verify", model_dir, "--bundle", "/dev/zero", "--json")
    assert_one_line_error(result, 2)
    doc = json.loads(result.stdout)
    assert doc == {
        "error": {"code": "USAGE_ERROR", "message": doc["error"]["message"]},
        "exitCode": 2,
    }
    assert "/dev/zero" in doc["error"]["message"]
    bad_option = run_attest("verify", model_dir, "--no-such-option", "--json")
    assert_one_line_error(bad_option, 2, "--no-such-option")
    assert json.loads(bad_option.stdout)["error"]["code"] == "USAGE_ERROR"


# A command with a bug in it, run through the real entry point: the last-resort handler must hold.
BUGGY = """
import sys, click
import cli.main as m
@click.command()
@click.option("--json", "as_json", is_flag=True)
def buggy(as_json):
    {}["missing"]
m.COMMANDS["buggy"] = ("__main__:buggy", "a command with a bug")
m.main(sys.argv[1:])
"""


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_exception_is_one_line_and_exit_3(debug: bool) -> None:
    env = {**os.environ, "ATTEST_DEBUG": "1" if debug else "0"}
    result = subprocess.run(
        [sys.executable, "-c", BUGGY, "buggy", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert result.returncode == 3
    assert "error: internal error: KeyError: 'missing'" in result.stderr
    assert json.loads(result.stdout) == {
        "error": {"code": "INTERNAL_ERROR", "message": "internal error: KeyError: 'missing'"},
        "exitCode": 3,
    }
    assert ("Traceback" in result.stderr) is debug


def test_help_documents_the_exit_codes(run_attest: RunAttest) -> None:
    out = run_attest("--help").stdout
    for line in ("0  allowed", "1  denied", "2  usage error", "3  could not decide"):
        assert line in out


def test_signed_manifest_with_a_file_that_is_also_a_folder(
    tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest
) -> None:
    """A signature proves who wrote a manifest, not that it is sane: `a` beside `a/b` is refused."""
    from attest.keys import load_private_key
    from attest.predicates import MODEL_MANIFEST_V1
    from attest.signing import KeySigner
    from attest.statement import build_statement

    files = [{"path": "a", "size": 1, "digest": "0" * 64}, {"path": "a/b", "size": 1, "digest": "1" * 64}]
    predicate = {"hashAlgorithm": "sha256", "model": {"name": "x"}, "files": files, "ignores": []}
    statement = build_statement("x", "sha256:" + "2" * 64, MODEL_MANIFEST_V1, predicate)
    bundle = tmp_path / "crafted.sigstore.json"
    bundle.write_text(json.dumps(KeySigner(load_private_key(keypair[0])).sign_statement(statement)))
    result = run_attest("verify", model_dir, "--key", keypair[1], "--bundle", bundle, "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    rejected = json.loads(result.stdout)["rejected"]
    assert any("'a' as a file and as a folder of 'a/b'" in r["message"] for r in rejected), rejected


def test_sign_refuses_ignores_that_hide_weights(
    model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest, tmp_path: Path
) -> None:
    key, pub = keypair
    bundle = tmp_path / "m.sigstore.json"
    refused = run_attest("sign", model_dir, "--key", key, "--ignore", "*.safetensors", "-o", bundle)
    assert_one_line_error(refused, 2, "model.safetensors (weights)", "--allow-ignore-loadable")
    assert not bundle.exists()
    allowed = run_attest(
        "sign", model_dir, "--key", key, "--ignore", "*.safetensors", "--allow-ignore-loadable", "-o", bundle
    )
    assert allowed.returncode == 0, allowed.stderr
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    import base64

    predicate = json.loads(base64.b64decode(envelope["payload"]))["predicate"]
    assert predicate["allowIgnoreLoadable"] is True
    assert "*.safetensors" in predicate["ignores"]
    assert "model.safetensors" not in {f["path"] for f in predicate["files"]}

    # verify says which files on disk the signature does not cover
    plain = run_attest("verify", model_dir, "--key", pub, "--bundle", bundle)
    assert plain.returncode == 0, plain.stderr
    assert "warning: not covered by the signature" in plain.stderr and "model.safetensors" in plain.stderr
    as_json = run_attest("verify", model_dir, "--key", pub, "--bundle", bundle, "--json")
    assert json.loads(as_json.stdout)["ignoredFiles"] == ["model.safetensors"]

    # and a policy can refuse such a manifest outright
    strict = tmp_path / "strict.yaml"
    strict.write_text(FORBID_IGNORES.format(pub=pub))
    denied = run_attest("verify", model_dir, "--bundle", bundle, "--policy", strict, "--json")
    assert denied.returncode == 1
    assert "IGNORES_FORBIDDEN" in {r["code"] for r in json.loads(denied.stdout)["reasons"]}


def test_forbid_ignores_allows_a_manifest_with_default_ignores(
    model_dir: Path, keypair: tuple[Path, Path], signed: Path, run_attest: RunAttest, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.yaml"
    strict.write_text(FORBID_IGNORES.format(pub=keypair[1]))
    result = run_attest("verify", model_dir, "--bundle", signed, "--policy", strict)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unreachable_registry_is_could_not_decide(
    model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest
) -> None:
    """No answer is not a denial: exit 3, distinct from 1, so a caller knows to retry."""
    from tests.registry_fixtures import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_attest("verify", model_dir, "--key", keypair[1], "--registry", url, "--json")
    assert_one_line_error(result, 3, "unreachable")
    assert json.loads(result.stdout)["exitCode"] == 3


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_sign_predicate_from_a_device_or_fifo_refused(
    tmp_path: Path, model_dir: Path, keypair: tuple[Path, Path], run_attest: RunAttest, special: str
) -> None:
    """``--predicate /dev/zero`` would read forever and a FIFO with no writer would block: refused."""
    path = special_file(special, tmp_path)
    out = tmp_path / "scan.sigstore.json"
    started = time.monotonic()
    result = run_attest(
        "sign", model_dir, "--key", keypair[0], "-o", out,
        "--predicate-type", "https://model-attest.dev/backdoor-scan/v1", "--predicate", path,
    )  # fmt: skip
    assert_one_line_error(result, 2, str(path), "predicate", "not a regular file")
    assert time.monotonic() - started < 60
    assert not out.exists()


def test_library_key_loading_refuses_a_fifo_and_an_oversized_key(tmp_path: Path) -> None:
    """``attest.keys`` read whole files before: a FIFO blocked the caller and a huge file filled memory."""
    from attest.errors import UsageError
    from attest.keys import is_encrypted_key, load_private_key, load_public_key

    fifo = special_file("fifo", tmp_path)
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"-----BEGIN PUBLIC KEY-----\n" + b"A" * (2 * 1024 * 1024))
    for load in (load_public_key, load_private_key, is_encrypted_key):
        with pytest.raises(UsageError, match="not a regular file"):
            load(fifo)
        with pytest.raises(UsageError, match="over the 1048576-byte limit"):
            load(huge)


def test_deeply_nested_policy_is_a_policy_error(
    tmp_path: Path, model_dir: Path, signed: Path, run_attest: RunAttest
) -> None:
    """100,000 '[' fit in the 1 MiB policy cap; the YAML parser then recursed into RecursionError,
    reported as "internal error" (exit 3). It is a bad policy: exit 2, one line."""
    policy = tmp_path / "deep.yaml"
    policy.write_text("[" * 100_000 + "]" * 100_000)
    result = run_attest("verify", model_dir, "--bundle", signed, "--policy", policy, "--json")
    assert_one_line_error(result, 2, str(policy), "nested too deeply")
    assert json.loads(result.stdout)["error"]["code"] == "POLICY_ERROR"


def test_json_after_double_dash_belongs_to_the_program(tmp_path: Path, run_attest: RunAttest) -> None:
    """``attest run -- prog --json``: the ``--json`` is the program's, so attest's error stays plain."""
    env = {k: v for k, v in os.environ.items() if k != "ATTEST_POLICY"}
    prog = tmp_path / "prog.py"
    prog.write_text("print('ran')\n")
    for args in (("--", sys.executable, prog, "--json"), (sys.executable, prog, "--json")):
        result = run_attest("run", *args, env=env)
        assert_one_line_error(result, 2, "a policy is required")
        assert result.stdout == ""  # no JSON error object, and the program never ran
    # run has no --json of its own: before the program it is the program's first word
    result = run_attest("run", "--json", "--", sys.executable, prog, env=env)
    assert_one_line_error(result, 2, "a policy is required")
    assert result.stdout == ""
    # other commands still print JSON errors, also with a '--' later on the line
    verify = run_attest("verify", tmp_path / "missing-model", "--json", "--", "x")
    assert verify.returncode == 2 and json.loads(verify.stdout)["exitCode"] == 2
