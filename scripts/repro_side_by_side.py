"""Run the pipeline's pending training stages side by side, then `dvc repro` the rest.

    python scripts/repro_side_by_side.py --workers 2

`dvc repro` runs one stage at a time and locks the checkout, so one training run with
one thread leaves the second core idle. This script trains the pending `train@...`
stages in N temporary git worktrees at once (each a plain `dvc repro TARGETS`), copies
their outputs back, records their dvc.lock entries (written by DVC in the worktree, with
the same deps, params and outs hashes as here), and finishes with `dvc repro` here,
which then finds those stages up to date and runs evaluate and compare. The result is
the same as one `dvc repro` (train.threads is part of the params, so runs are identical).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

DVC = [sys.executable, "-m", "dvc"]


def sh(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, **kwargs)


def pending_training(root: Path) -> list[str]:
    status = json.loads(sh([*DVC, "status", "--json"], root, capture_output=True).stdout or "{}")
    return [name for name in status if name.startswith("train@")]


def stage_outs(root: Path, stage: str) -> list[str]:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return [out["path"] for out in lock["stages"][stage].get("outs", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(sh(["git", "rev-parse", "--show-toplevel"], Path.cwd(), capture_output=True).stdout.strip())
    dirty = sh(
        ["git", "status", "--porcelain", "--", "dvc.yaml", "params.yaml", "src", "stages"],
        root,
        capture_output=True,
    ).stdout
    if dirty.strip():
        sys.exit(f"error: commit these first, the worktrees check out HEAD:\n{dirty}")

    sh([*DVC, "repro", "download"], root)
    stages = pending_training(root)
    print(f"{len(stages)} training stages to run on {args.workers} workers: {', '.join(stages)}", flush=True)
    groups = [stages[i :: args.workers] for i in range(args.workers)]
    groups = [g for g in groups if g]
    tmp = Path(tempfile.mkdtemp(prefix="stn-side-by-side-"))
    workers = []
    try:
        for k, group in enumerate(groups):
            tree = tmp / f"w{k}"
            sh(["git", "worktree", "add", "-q", "--detach", str(tree), "HEAD"], root)
            shutil.copy(root / "dvc.lock", tree / "dvc.lock")
            shutil.copytree(root / "data", tree / "data", dirs_exist_ok=True)
            log = open(tmp / f"w{k}.log", "w")  # noqa: SIM115
            print(f"worker {k}: {' '.join(group)} (log {log.name})", flush=True)
            workers.append(
                (
                    tree,
                    group,
                    subprocess.Popen([*DVC, "repro", *group], cwd=tree, stdout=log, stderr=subprocess.STDOUT),
                )
            )
        failed = [tree for tree, _, proc in workers if proc.wait() != 0]
        if failed:
            sys.exit(f"error: training failed in {failed}; see the logs in {tmp}")
        lock = yaml.safe_load((root / "dvc.lock").read_text())
        for tree, group, _ in workers:
            worker_lock = yaml.safe_load((tree / "dvc.lock").read_text())
            for stage in group:
                lock["stages"][stage] = worker_lock["stages"][stage]
                for out in stage_outs(tree, stage):
                    (root / out).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(tree / out, root / out)
        (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    finally:
        for tree, _, _ in workers:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root)
    sh([*DVC, "repro"], root)


if __name__ == "__main__":
    main()
