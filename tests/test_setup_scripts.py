"""The set-up script's Python check (``scripts/venv.sh``).

Fake interpreters (small shell scripts that print a version) stand in for
old or broken Pythons: the script must stop before creating or installing
anything, with one message naming what it found, what it needs and how to
pick another interpreter. A fake venv whose Python is new enough passes the
check and goes on to activate it (no install: its stamp is present).

Authors
 * speechbrain-ast developers
"""

import hashlib
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _fake_python(folder, version, name="python3"):
    """An executable named ``name`` that prints ``version`` whatever it is
    asked (as ``python -c 'print(version)'`` would)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def _source_venv(tmp_path, env_extra, path_first=None):
    """Sources scripts/venv.sh as the scripts do (``set -euo pipefail``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV")}
    env.setdefault("VENV", str(tmp_path / "venv"))
    env.update(env_extra)
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [
            "bash",
            "-c",
            "set -euo pipefail; source scripts/venv.sh; echo AFTER-VENV",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _assert_refused(run, found):
    assert run.returncode != 0
    assert "AFTER-VENV" not in run.stdout
    assert "creating" not in run.stdout and "installing" not in run.stdout
    err = run.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert found in err
    assert "3.11 or newer" in err
    assert "PYTHON=python3" in err


def test_old_python3_on_path_is_refused(tmp_path):
    bin_dir = tmp_path / "bin"
    fake = _fake_python(bin_dir, "3.9.18")
    run = _source_venv(tmp_path, {}, path_first=bin_dir)
    _assert_refused(run, "Python 3.9.18")
    assert str(fake) in run.stderr  # which interpreter it found
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("version", ["3.10.14", "2.7.18"])
def test_old_python_given_by_variable_is_refused(tmp_path, version):
    fake = _fake_python(tmp_path / "bin", version, name="python-old")
    run = _source_venv(tmp_path, {"PYTHON": str(fake)})
    _assert_refused(run, f"Python {version}")
    assert not (tmp_path / "venv").exists()


def test_missing_or_broken_python_is_refused(tmp_path):
    run = _source_venv(tmp_path, {"PYTHON": str(tmp_path / "no-such-python")})
    _assert_refused(run, "cannot run Python")
    assert "no-such-python" in run.stderr
    broken = _fake_python(tmp_path / "bin", "garbage", name="python-broken")
    run = _source_venv(tmp_path, {"PYTHON": str(broken)})
    _assert_refused(run, "cannot run Python")


def _stamp_name():
    """The install stamp venv.sh looks for (same inputs, same hash)."""
    names = ["setup.py", "constraints.txt"]
    names += sorted(
        str(p.relative_to(ROOT))
        for p in ROOT.glob("recipes/*/extra_requirements.txt")
    )
    data = b"".join((ROOT / n).read_bytes() for n in names)
    return ".installed-" + hashlib.sha1(data).hexdigest()[:12]


def _fake_venv(folder, version):
    """A venv folder whose bin/python prints ``version``; activate sets a
    marker; its install stamp is present so nothing is installed."""
    _fake_python(folder / "bin", version, name="python")
    (folder / "bin" / "activate").write_text("export FAKE_VENV_ACTIVE=1\n")
    (folder / _stamp_name()).touch()
    return folder


def test_existing_venv_is_checked(tmp_path):
    # the existing venv's own Python counts, not PYTHON: an old one is
    # refused with the advice to recreate it
    old = _fake_venv(tmp_path / "old", "3.9.2")
    new = _fake_python(tmp_path / "bin", "3.12.1", name="python-new")
    run = _source_venv(tmp_path, {"VENV": str(old), "PYTHON": str(new)})
    _assert_refused(run, "Python 3.9.2")
    assert f"rm -rf {old}" in run.stderr
    # a new enough one passes the check and is activated, nothing installed
    good = _fake_venv(tmp_path / "good", "3.11.7")
    run = _source_venv(tmp_path, {"VENV": str(good)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "AFTER-VENV" and run.stderr == ""


def test_stated_python_range_agrees():
    """setup.py, the script's check and the README state the same minimum."""
    setup = (ROOT / "setup.py").read_text()
    assert 'python_requires=">=3.11"' in setup
    script = (ROOT / "scripts" / "venv.sh").read_text()
    assert '"$_sbast_minor" -lt 11' in script
    readme = (ROOT / "README.md").read_text()
    set_up = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    assert "Python 3.11 or newer" in set_up
    # the two set-up commands stay two
    block = set_up.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert [c.split("#")[0].strip() for c in commands] == [
        "bash scripts/demo.sh",
        "bash scripts/test.sh",
    ]
