"""Run the pipeline's pending training and evaluation stages side by side, then `dvc repro` the rest.

    python scripts/repro_side_by_side.py [--workers N]

`dvc repro` runs one stage at a time and locks the checkout, so one training run with
one thread leaves the other cores idle. This script runs each pending run (its `train-...`
stage, then its `evaluate-...` and `rotation-...` stages) in one of N temporary git worktrees at once (each a
plain `dvc repro TARGETS` over a copy of this checkout's pipeline, params and code), copies
their outputs back, records their dvc.lock entries (written by DVC in the worktree, with the
same deps, params and outs hashes as here), and finishes with `dvc repro` here, which finds
those stages up to date and runs what is left (compare, benchmark). The result equals one
plain `dvc repro`: train.threads is a param, so every run computes exactly what it would
compute alone.

dvc.lock is written here under DVC's own repository lock, so a `dvc repro` started in this
checkout meanwhile never interleaves with it: whichever comes second waits.

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
from dvc.repo import Repo

from stn.atomic import write_text

DVC = [sys.executable, "-m", "dvc"]
PIPELINE = ("dvc.yaml", "params.yaml", ".dvcignore", "src", "stages", "data", "dvc.lock")


def sh(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, **kwargs)


RUN_STAGES = ("train-", "evaluate-", "rotation-")  # a run's stages, in the order they run


def pending_runs(root: Path) -> list[list[str]]:
    """The pending stages of each run (train-STUDY@RUN, evaluate-..., rotation-...), one list per run."""
    status = json.loads(sh([*DVC, "status", "--json"], root, capture_output=True).stdout or "{}")
    runs: dict[str, list[str]] = {}
    for name in status:
        kind = next((k for k in RUN_STAGES if name.startswith(k)), None)
        if kind is not None:
            runs.setdefault(name.removeprefix(kind), []).append(name)

    def order(stage: str) -> int:
        return next(i for i, kind in enumerate(RUN_STAGES) if stage.startswith(kind))

    return [sorted(stages, key=order) for stages in runs.values()]


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


def copy_out(src: Path, dst: Path, out: str) -> None:
    (dst / out).parent.mkdir(parents=True, exist_ok=True)
    if (src / out).is_dir():  # e.g. an evaluation's image folder: replace it whole
        shutil.rmtree(dst / out, ignore_errors=True)
        shutil.copytree(src / out, dst / out)
    else:
        shutil.copy2(src / out, dst / out)


def bring_upstream(root: Path, tree: Path, stages: list[str]) -> None:
    """Give the worktree the run's finished upstream stages (an evaluation's training run,
    perhaps collected from another worker) as they are here, so it does not redo them."""
    run = stages[0].split("-", 1)[1]
    upstream = [kind + run for kind in RUN_STAGES if kind + run not in stages]
    here = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    lock = yaml.safe_load((tree / "dvc.lock").read_text())
    for stage in upstream:
        if stage in here:
            for out in here[stage].get("outs", []):
                if (root / out["path"]).exists():
                    copy_out(root, tree, out["path"])
            lock["stages"][stage] = here[stage]
    write_text(tree / "dvc.lock", yaml.safe_dump(lock, sort_keys=False))


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
            copy_out(tree, root, out)
        lock["stages"][stage] = entry
        done.append(stage)
    return done


def save_finished(root: Path, tree: Path, stages: list[str]) -> list[str]:
    """Copy finished stages' outputs and lock entries into this checkout's dvc.lock, holding
    DVC's repository lock (waiting for a `dvc repro` here to finish, if one runs)."""
    with Repo(str(root), _wait_for_lock=True).lock:
        lock = yaml.safe_load((root / "dvc.lock").read_text())
        done = collect(root, tree, stages, lock)
        if done:
            write_text(root / "dvc.lock", yaml.safe_dump(lock, sort_keys=False))
    if done:
        print(f"collected {', '.join(done)}", flush=True)
    return done


def schedule(runs: list[list[str]], root: Path) -> list[list[str]]:
    """The order to run in (each run a list of its stages): studies in params.yaml's order;
    within a study, variant by variant in the study's order, so an interrupted study holds
    whole variants; plain CNNs (about half as long; augmenting ones are not) last, so short
    runs fill the gaps at the end instead of one long run leaving a core idle; a study's
    extra seeds after its other runs but before its plain CNNs. Stage names are
    KIND-STUDY[-extra]@DATASET-VARIANT-SEED."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    studies = list(params["studies"])

    def key(stages: list[str]) -> tuple[int, bool, bool, int]:
        study, run = stages[0].split("-", 1)[1].split("@", 1)
        extra = study.endswith("-extra")
        study = study.removesuffix("-extra")
        dataset = next((d for d in params["datasets"] if run.startswith(d + "-")), "")
        variant = run.removeprefix(dataset + "-").rsplit("-", 1)[0]
        order = params["studies"][study]["variants"]
        position = order.index(variant) if variant in order else len(order)
        spec = params["variants"].get(variant, {})
        plain_cnn = not spec.get("stn", True) and not spec.get("augment", False)
        return studies.index(study) if study in studies else len(studies), plain_cnn, extra, position

    return sorted(runs, key=key)  # stable: keeps dvc's order (dataset, seed) within a variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    # SIGTERM (a scheduler, `kill`) stops the workers as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(sh(["git", "rev-parse", "--show-toplevel"], Path.cwd(), capture_output=True).stdout.strip())

    sh([*DVC, "repro", "download", "prepare"], root)
    queue = schedule(pending_runs(root), root)
    n_workers = max(1, min(args.workers, len(queue)))
    print(f"{len(queue)} runs to train or evaluate on {n_workers} workers", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="stn-side-by-side-"))
    trees = [tmp / f"w{k}" for k in range(n_workers)] if queue else []
    running: dict[int, tuple[list[str], subprocess.Popen, object]] = {}  # worker -> stages, process, log
    started: dict[int, list[str]] = {k: [] for k in range(len(trees))}
    failed = []
    try:
        for tree in trees:
            make_worktree(root, tree)
        # Each worker takes the next stage from the queue as soon as it is free.
        while queue or running:
            for k, tree in enumerate(trees):
                if k in running:
                    stages, proc, log = running[k]
                    if proc.poll() is None:
                        continue
                    del running[k]
                    log.close()
                    if proc.returncode:
                        failed.extend(stages)
                        queue.clear()  # stop handing out work; finished stages are still kept
                    # bring it home now: an interrupted study keeps every finished stage
                    save_finished(root, tree, stages)
                if queue and k not in running:
                    stages = queue.pop(0)
                    started[k].extend(stages)
                    bring_upstream(root, tree, stages)
                    env = {**os.environ, "PYTHONPATH": str(tree / "src")}  # the worktree's code
                    if env.get("MNIST_MIRROR") and "://" not in env["MNIST_MIRROR"]:  # as seen from here
                        env["MNIST_MIRROR"] = str(Path(env["MNIST_MIRROR"]).resolve())
                    log = open(tmp / f"w{k}.log", "a")  # noqa: SIM115
                    print(f"worker {k}: {' '.join(stages)} (log {log.name})", flush=True)
                    proc = subprocess.Popen(  # own process group: stopping it stops the stage too
                        [*DVC, "repro", *stages],
                        cwd=tree,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                    running[k] = (stages, proc, log)
            time.sleep(0.5)
    finally:
        for _, proc, log in running.values():
            os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: the stage checkpoints and exits
            proc.wait()
            log.close()
        done = [stage for k, tree in enumerate(trees) for stage in save_finished(root, tree, started[k])]
        print(f"collected {len(done)} more finished stages", flush=True)
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root)
    if failed:
        sys.exit(f"error: {', '.join(failed)} failed; the logs are in {tmp}")
    sh([*DVC, "repro"], root)


if __name__ == "__main__":
    main()
