"""Refresh requirements.lock (hashed) and requirements-torch.txt from pyproject.toml.

    python3.11 scripts/lock.py                       # keep the locked versions, add/drop what changed
    python3.11 scripts/lock.py --upgrade             # newest allowed versions of everything
    python3.11 scripts/lock.py --upgrade-package ruff

pyproject.toml stays the human-edited input (dependencies, the `test` extra, the build backend).
torch and torchvision are pinned by version only (requirements-torch.txt): their wheels differ per
index (CPU, CUDA builds), so scripts/install.sh installs them from TORCH_INDEX in a step of its own.
Their own pure-Python dependencies go into the hashed lock; the CUDA runtime wheels (nvidia-*,
cuda-*, triton) do not, as the CPU build has none and a CUDA build brings them pinned by torch.
Torch's dependencies are read from the wheels' metadata on pip's configured index (PyPI: metadata
only, no download), or on TORCH_INDEX if set. The lock itself is resolved on PyPI by uv, for Linux
x86_64 and Python 3.11 (the Docker image's platform).
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TORCH_PINS = ROOT / "requirements-torch.txt"
COMMAND = "python3.11 scripts/lock.py"
UV = "uv==0.13.8"
TORCH_PACKAGES = ("torch", "torchvision")
# Only in torch's CUDA build (PyPI's Linux wheel), which brings them pinned itself.
CUDA_ONLY = re.compile(r"^(nvidia-|cuda-|triton$)")
PIP_INDEX_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS")


def name_of(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise SystemExit(f"cannot read a package name in {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def pip_env(torch_index: str) -> tuple[list[str], dict[str, str]]:
    """pip's index options for TORCH_INDEX, as scripts/install.sh uses them."""
    if not torch_index:
        return [], dict(os.environ)
    # TORCH_INDEX alone: pip's configuration (extra indexes, find-links) ignored.
    env = {k: v for k, v in os.environ.items() if k not in PIP_INDEX_VARIABLES}
    return ["--index-url", torch_index], dict(env, PIP_CONFIG_FILE=os.devnull)


def torch_requirements(pins: list[str], torch_index: str) -> list[str]:
    """The dependencies torch and torchvision declare, without the CUDA runtime and each other."""
    args, env = pip_env(torch_index)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
             "--quiet", "--report", str(report), *args, *pins],
            check=True, env=env,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    requirements = []
    for item in installs:
        for req in item["metadata"].get("requires_dist") or []:
            name = name_of(req)
            if "extra ==" in req or name in TORCH_PACKAGES or CUDA_ONLY.match(name):
                continue
            requirements.append(req)
    return requirements


def main() -> None:
    if sys.version_info[:2] != (3, 11):
        raise SystemExit("run with Python 3.11 (the lock's Python): python3.11 scripts/lock.py")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = project["project"]["dependencies"] + project["project"]["optional-dependencies"]["test"]
    pins = [d for d in dependencies if name_of(d) in TORCH_PACKAGES]
    if sorted(name_of(p) for p in pins) != sorted(TORCH_PACKAGES) or not all("==" in p for p in pins):
        raise SystemExit(f"pyproject.toml must pin {' and '.join(TORCH_PACKAGES)} with ==")
    others = [d for d in dependencies if name_of(d) not in TORCH_PACKAGES]
    # setuptools: the build backend, for `pip install --no-build-isolation -e .`; pip: the installer.
    others += project["build-system"]["requires"] + ["pip"]
    torch_index = os.environ.get("TORCH_INDEX", "")
    torch_deps = torch_requirements(pins, torch_index)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # File names show in the lock's "# via" notes.
        (tmp_path / "pyproject.in").write_text("\n".join(others) + "\n")
        (tmp_path / "torch.in").write_text("\n".join(torch_deps) + "\n")
        subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True)
        subprocess.run([tmp_path / "venv/bin/python", "-m", "pip", "install", "--quiet", UV], check=True)
        subprocess.run(
            [tmp_path / "venv/bin/uv", "pip", "compile", "pyproject.in", "torch.in",
             "--output-file", str(LOCK), "--generate-hashes", "--no-config", "--quiet",
             "--index-url", "https://pypi.org/simple",
             "--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28",
             *sys.argv[1:]],
            check=True, cwd=tmp_path, env=dict(os.environ, UV_CUSTOM_COMPILE_COMMAND=COMMAND),
        )  # fmt: skip

    source = torch_index or "pip's configured index"
    note = (
        "# For Linux x86_64, Python 3.11: every dependency but torch and torchvision, which\n"
        "# requirements-torch.txt pins by version only (no hash: the wheel differs per index, CPU or\n"
        "# CUDA build; scripts/install.sh takes them from TORCH_INDEX). Their dependencies are here,\n"
        f"# read from {' and '.join(pins)} on {source},\n"
        "# less the CUDA runtime (nvidia-*, cuda-*, triton) that a CUDA build brings pinned itself.\n"
    )
    lines = LOCK.read_text().splitlines(keepends=True)
    header_end = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    LOCK.write_text("".join(lines[:header_end]) + note + "".join(lines[header_end:]))
    TORCH_PINS.write_text(
        f"# Written by `{COMMAND}` from pyproject.toml. By version only, no hash: the wheel\n"
        "# differs per index (CPU, CUDA builds); scripts/install.sh installs these from TORCH_INDEX.\n"
        + "".join(f"{p.replace(' ', '')}\n" for p in sorted(pins))
    )
    count = sum(1 for line in LOCK.read_text().splitlines() if re.match(r"[A-Za-z0-9]", line))
    print(f"wrote {LOCK.name} ({count} packages, hashed) and {TORCH_PINS.name} ({', '.join(sorted(pins))})")


if __name__ == "__main__":
    main()
