"""How long DVC's everyday commands take on this checkout's full study.

    python bench/dvc_speed.py [--repeats N]

Run from the project root with the study up to date (a clone after the README's set-up).
Each command runs N times (default 1); the best time is printed, beside the size of what
DVC parses on every command: the number of stages and the lines of dvc.lock. Nothing is
changed: `dvc plots show` writes to a temporary folder.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine
from dvc.repo import Repo

COMMANDS = [
    ["status"],
    ["status", "download"],
    ["repro", "--dry"],
    ["params", "diff"],
    ["exp", "show", "--csv"],
    ["metrics", "show"],
    ["plots", "show", "--out", "{tmp}"],
]


def timed(args: list[str]) -> float:
    """Seconds one `dvc ARGS` took; raises CalledProcessError if it failed."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dvc", *args], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each command; the best is shown")
    args = parser.parse_args()
    with Repo(".") as repo:
        stages = len(list(repo.index.stages))
    lock_lines = len(Path("dvc.lock").read_text().splitlines())
    print(f"machine: {machine()}")
    print(f"study: {stages} stages, dvc.lock {lock_lines} lines")
    with tempfile.TemporaryDirectory() as tmp:
        for command in COMMANDS:
            command = [part.format(tmp=tmp) for part in command]
            best = min(timed(command) for _ in range(args.repeats))
            shown = " ".join(c if not c.startswith(tmp) else "TMP" for c in command)
            print(f"dvc {shown:32s} {best:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
