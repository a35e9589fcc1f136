"""The locks scripts/lock.sh writes, one per platform, and the one ./run_all.sh installs.

requirements.lock (Linux x86-64, torch's CPU wheel) is the tested one; requirements-cuda.lock (PyPI's torch, its
CUDA build) and requirements-macos.lock (Apple silicon) are resolved, never installed here. Every lock pins every
package with its hashes, and where two locks hold the same package they pin the same version (torch's local
``+cpu`` aside), so a result does not depend on which platform installed the tree.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU, CUDA, MACOS = "requirements.lock", "requirements-cuda.lock", "requirements-macos.lock"


def _name(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


def read_lock(path: Path) -> dict[str, str]:
    """Package -> pinned version of a ``uv pip compile --generate-hashes`` file; fails on an entry without a hash."""
    locked = {}
    for entry in re.split(r"\n(?=\S)", path.read_text()):
        if entry.startswith(("#", "-")) or not entry.strip():  # the header's comments and options (--find-links)
            continue
        requirement = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\]+)", entry)
        assert requirement, f"{path.name}: not a pinned requirement: {entry[:200]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", entry), f"{path.name}: {requirement[1]} has no hash"
        locked[_name(requirement[1])] = requirement[2]
    return locked


def pyproject_pins() -> dict[str, str]:
    pyproject = (ROOT / "pyproject.toml").read_text()
    return {_name(name): version for name, version in re.findall(r'"([A-Za-z0-9_.-]+)==([^";]+)"', pyproject)}


def test_cpu_lock_pins_the_whole_tree_with_hashes_in_step_with_pyproject():
    """requirements.lock pins every package with its hashes, the pyproject pins among them; torch is the CPU wheel."""
    locked = read_lock(ROOT / CPU)
    assert len(locked) > 100 and locked["torch"] == "2.13.0+cpu"
    assert {name: locked.get(name, "missing").split("+")[0] for name in pyproject_pins()} == pyproject_pins()
    assert not [name for name in locked if name.startswith("nvidia")]  # no CUDA build pulled in


@pytest.mark.parametrize("lock", [CUDA, MACOS])
def test_platform_lock_is_hashed_and_shares_the_cpu_locks_pins(lock):
    """Every package both locks hold has one version; the rest are the platform's own (nvidia-*, appnope)."""
    assert (ROOT / lock).is_file(), f"{lock} is missing: run scripts/lock.sh"
    cpu, other = read_lock(ROOT / CPU), read_lock(ROOT / lock)
    assert other["torch"] == "2.13.0"  # PyPI's build for the platform: CUDA on Linux, MPS on macOS
    shared = (set(cpu) & set(other)) - {"torch"}
    assert {name: other[name] for name in shared} == {name: cpu[name] for name in shared}
    assert set(pyproject_pins()) <= set(other)
    assert set(cpu) - set(other) == set(), "a package of the CPU lock is missing"
    assert any(name.startswith("nvidia") for name in other) == (lock == CUDA)


# -- which lock ./run_all.sh installs ------------------------------------------------------------------------------

FAKE_PYTHON = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/../../calls"\n'  # records each call, installs nothing


@pytest.fixture()
def checkout(tmp_path) -> Path:
    """run_all.sh, pyproject.toml and the locks in a folder whose .venv/bin/python only logs its arguments."""
    for name in ("run_all.sh", "pyproject.toml", CPU, CUDA, MACOS):
        shutil.copy2(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def installed_lock(checkout: Path, *args: str, system: str = "Linux", gpu: bool = False) -> str | None:
    """The lock ./run_all.sh [ARGS] --tests installs where ``uname -s`` prints ``system`` and ``nvidia-smi -L``
    succeeds if ``gpu``; None when the stamp says the tree is installed already."""
    bin_dir = checkout / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    for command, script in (("uname", f"echo {system}"), ("nvidia-smi", "exit 0" if gpu else "exit 9")):
        (bin_dir / command).write_text(f"#!/bin/sh\n{script}\n")
        (bin_dir / command).chmod(0o755)
    (checkout / "calls").write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(["bash", "run_all.sh", *args, "--tests"], cwd=checkout, env=env, check=True, capture_output=True)
    installs = re.findall(r"--require-hashes -r (\S+)", (checkout / "calls").read_text())
    assert len(installs) <= 1
    return installs[0] if installs else None


@pytest.mark.parametrize(("args", "system", "gpu", "expected"), [
    ((), "Linux", False, CPU),
    ((), "Linux", True, CUDA),
    (("--cpu",), "Linux", True, CPU),
    (("--gpu",), "Linux", False, CUDA),
    ((), "Darwin", False, MACOS),
    (("--gpu",), "Darwin", False, MACOS),  # no CUDA build of torch for macOS
])
def test_run_all_installs_the_platforms_lock(checkout, args, system, gpu, expected):
    assert installed_lock(checkout, *args, system=system, gpu=gpu) == expected


def test_the_venv_stamp_names_the_lock(checkout):
    """The same lock again installs nothing; switching to another lock installs it; the CPU stamp is today's."""
    assert installed_lock(checkout) == CPU
    assert installed_lock(checkout) is None
    assert installed_lock(checkout, "--gpu") == CUDA
    assert installed_lock(checkout) == CPU
    stamp = (checkout / ".venv" / ".acmtl-installed").read_text().split()[0]
    today = subprocess.run("cat pyproject.toml requirements.lock | sha256sum", shell=True, cwd=checkout,
                           capture_output=True, text=True, check=True).stdout.split()[0]
    assert stamp == today  # a CPU .venv set up before the locks were split is not reinstalled
