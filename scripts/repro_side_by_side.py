"""Run the pipeline's pending training stages side by side, then `dvc repro` the rest.

    python scripts/repro_side_by_side.py [--workers N]

`dvc repro` runs one stage at a time and locks the checkout, so one training run with
one thread leaves the other cores idle. This script trains the pending `train@...`
stages in N temporary git worktrees at once (each a plain `dvc repro TARGETS` over a copy
of this checkout's pipeline, params and code), copies their outputs back, records their
dvc.lock entries (written by DVC in the worktree, with the same deps, params and outs
hashes as here), and finishes with `dvc repro` here, which finds those stages up to date
and runs evaluate and compare. The result equals one plain `dvc repro`: train.threads is
a param, so every run computes exactly what it would compute alone.

Checkpoints live in this checkout's checkpoints/ folder, so an interrupted run resumes,
whether the next attempt is this script or a plain `dvc repro`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from stn.atomic import write_text

DVC = [sys.executable, "-m", "dvc"]
PIPELINE = ("dvc.yaml", "params.yaml", ".dvcignore", "src", "stages", "data", "dvc.lock")


def sh(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, **kwargs)


def pending_training(root: Path) -> list[str]:
    status = json.loads(sh([*DVC, "status", "--json"], root, capture_output=True).stdout or "{}")
    return [name for name in status if name.startswith("train-")]


def make_worktree(root: Path, tree: Path) -> None:
    """A worktree holding this checkout's pipeline as it is now (committed or not)."""
    sh(["git", "worktree", "add", "-q", "--detach", str(tree), "HEAD"], root)
    for name in PIPELINE:
        src, dst = root / name, tree / name
        if dst.is_dir():
            shutil.rmtree(dst)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dst)
    (root / "checkpoints").mkdir(exist_ok=True)
    (tree / "checkpoints").symlink_to(root / "checkpoints")
    # One DVC cache for all: the data stages' outputs are found there, not recomputed.
    sh([*DVC, "cache", "dir", "--local", str(root / ".dvc" / "cache")], tree, capture_output=True)


def collect(root: Path, tree: Path, stages: list[str], lock: dict) -> list[str]:
    """Copy back the outputs and lock entries of the stages the worker finished."""
    worker_stages = yaml.safe_load((tree / "dvc.lock").read_text())["stages"]
    done = []
    for stage in stages:
        entry = worker_stages.get(stage)
        if entry is None or lock["stages"].get(stage) == entry:
            continue  # not run (failed or interrupted) or unchanged
        outs = [out["path"] for out in entry.get("outs", [])]
        if not all((tree / out).exists() for out in outs):
            continue
        for out in outs:
            (root / out).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(tree / out, root / out)
        lock["stages"][stage] = entry
        done.append(stage)
    return done


def save_finished(root: Path, tree: Path, stages: list[str]) -> list[str]:
    """Copy finished stages' outputs and lock entries into this checkout's dvc.lock."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    done = collect(root, tree, stages, lock)
    if done:
        write_text(root / "dvc.lock", yaml.safe_dump(lock, sort_keys=False))
        print(f"collected {', '.join(done)}", flush=True)
    return done


def schedule(stages: list[str], root: Path) -> list[str]:
    """The order to train in: studies in params.yaml's order; within a study, variant by
    variant in the study's order, so an interrupted study holds whole variants; plain CNNs
    (about half as long; augmenting ones are not) last, so short runs fill the gaps at the
    end instead of one long run leaving a core idle. Stage names are
    train-STUDY@DATASET-VARIANT-SEED."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    studies = list(params["studies"])

    def key(stage: str) -> tuple[int, int, int]:
        study, run = stage.removeprefix("train-").split("@", 1)
        dataset = next((d for d in params["datasets"] if run.startswith(d + "-")), "")
        variant = run.removeprefix(dataset + "-").rsplit("-", 1)[0]
        order = params["studies"][study]["variants"]
        position = order.index(variant) if variant in order else len(order)
        spec = params["variants"].get(variant, {})
        plain_cnn = not spec.get("stn", True) and not spec.get("augment", False)
        return studies.index(study) if study in studies else len(studies), plain_cnn, position

    return sorted(stages, key=key)  # stable: keeps dvc's order (dataset, seed) within a variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    # SIGTERM (a scheduler, `kill`) stops the workers as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(sh(["git", "rev-parse", "--show-toplevel"], Path.cwd(), capture_output=True).stdout.strip())

    sh([*DVC, "repro", "download", "prepare"], root)
    queue = schedule(pending_training(root), root)
    n_workers = max(1, min(args.workers, len(queue)))
    print(f"{len(queue)} training stages to run on {n_workers} workers", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="stn-side-by-side-"))
    trees = [tmp / f"w{k}" for k in range(n_workers)] if queue else []
    running: dict[int, tuple[str, subprocess.Popen, object]] = {}  # worker -> stage, process, log
    started: dict[int, list[str]] = {k: [] for k in range(len(trees))}
    failed = []
    try:
        for tree in trees:
            make_worktree(root, tree)
        # Each worker takes the next stage from the queue as soon as it is free.
        while queue or running:
            for k, tree in enumerate(trees):
                if k in running:
                    stage, proc, log = running[k]
                    if proc.poll() is None:
                        continue
                    del running[k]
                    log.close()
                    if proc.returncode:
                        failed.append(stage)
                        queue.clear()  # stop handing out work; finished stages are still kept
                    else:  # bring it home now: an interrupted study keeps every finished run
                        save_finished(root, tree, [stage])
                if queue and k not in running:
                    stage = queue.pop(0)
                    started[k].append(stage)
                    env = {**os.environ, "PYTHONPATH": str(tree / "src")}  # the worktree's code
                    if env.get("MNIST_MIRROR") and "://" not in env["MNIST_MIRROR"]:  # as seen from here
                        env["MNIST_MIRROR"] = str(Path(env["MNIST_MIRROR"]).resolve())
                    log = open(tmp / f"w{k}.log", "a")  # noqa: SIM115
                    print(f"worker {k}: {stage} (log {log.name})", flush=True)
                    proc = subprocess.Popen(  # own process group: stopping it stops the stage too
                        [*DVC, "repro", stage],
                        cwd=tree,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    running[k] = (stage, proc, log)
            time.sleep(0.5)
    finally:
        for _, proc, log in running.values():
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: the stage checkpoints and exits
            proc.wait()
            log.close()
        done = [stage for k, tree in enumerate(trees) for stage in save_finished(root, tree, started[k])]
        print(f"collected {len(done)} more finished training stages", flush=True)
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root)
    if failed:
        sys.exit(f"error: {', '.join(failed)} failed; the logs are in {tmp}")
    sh([*DVC, "repro"], root)


if __name__ == "__main__":
    main()
