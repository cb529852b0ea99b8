"""Wall time of whole studies, a few epochs per run, through the stage scripts (no DVC).

    python bench/study_epoch.py rot                 # every train stage of rot, 1 epoch per run
    python bench/study_epoch.py rot --variants cnn  # a smoke test
    python bench/study_epoch.py mnist rot rts proj elastic --jobs 8  # 8 stages at a time (a GPU)

Every train stage of the tutorial-budget studies (upright, distorted: those without a recipe) that
list a dataset (GROUP@DATASET-VARIANT, GROUP being the study and, for its extra seeds,
STUDY-extra) runs as `dvc repro` runs it, `python stages/train.py GROUP DATASET VARIANT`, in a
scratch folder: a copy of params.yaml with each dataset's train.epochs set to --epochs, and data/
linked to the project's (prepare the datasets first: `python stages/download.py && python
stages/prepare.py DATASET`). `--jobs N` runs N stages at once, as `stn-repro` runs them on N
workers. Prints each stage's wall time and the epoch seconds its runs logged, then the time of
the datasets' full budgets of epochs: each stage's overhead (start-up, data loading, saving) plus
its logged epoch seconds scaled up, the stages packed onto the N slots longest first. With N > 1
this is an upper estimate: each stage keeps the speed it had while N shared the machine, also
once fewer are left.
"""

from __future__ import annotations

import argparse
import heapq
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r" epoch \d+/\d+ .* ([\d.]+)s \(\d+ img/s\)$")


def scratch_project(datasets: list[str], epochs: int) -> tuple[Path, dict[str, int]]:
    """A folder with params.yaml (the datasets' epochs set to `epochs`) and data/ linked; returns
    it and each dataset's own number of epochs."""
    folder = Path(tempfile.mkdtemp(prefix="stn-study-"))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    full = {}
    for dataset in datasets:
        train = raw["datasets"][dataset].get("train") or {}
        full[dataset] = train.get("epochs", raw["train"]["epochs"])
        raw["datasets"][dataset]["train"] = train | {"epochs": epochs}
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "data").symlink_to(ROOT / "data")
    return folder, full


def makespan(seconds: list[float], slots: int) -> float:
    """Wall time of jobs of `seconds` on `slots` workers, each taking the next job, longest first."""
    loads = [0.0] * slots
    for s in sorted(seconds, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + s)
    return max(loads)


def run_stage(folder: Path, group: str, dataset: str, variant: str) -> tuple[float, list[float]]:
    """Wall seconds of one train stage run in `folder`, and the epoch seconds its runs logged."""
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "stages" / "train.py"), group, dataset, variant]
    out = subprocess.run(cmd, cwd=folder, check=True, stdout=subprocess.PIPE, text=True).stdout
    seconds = time.perf_counter() - start
    return seconds, [float(m.group(1)) for line in out.splitlines() if (m := EPOCH_LINE.search(line))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variants", nargs="+", help="default: every variant of the studies")
    parser.add_argument("--jobs", type=int, default=1, help="stages run at once")
    args = parser.parse_args()
    if args.jobs < 1 or args.epochs < 1:
        parser.error("--jobs and --epochs must be at least 1")
    sys.path.insert(0, str(ROOT / "src"))
    from stn.params.study import StudySpec, load_params

    params = load_params(ROOT / "params.yaml")
    stages = []  # (group, dataset, variant, seeds)
    for dataset in args.datasets:
        if not (ROOT / "data" / dataset / "meta.json").is_file():
            raise SystemExit(f"data/{dataset}: not prepared; run stages/download.py and stages/prepare.py")
        for name, study in params.studies:
            if not isinstance(study, StudySpec) or dataset not in study.datasets:
                continue  # the recipe studies train the paper's models: bench/speed.py measures them
            unknown = set(args.variants or []) - set(study.variants)
            if unknown:
                raise SystemExit(f"--variants: {sorted(unknown)} not in studies.{name}.variants")
            for variant in args.variants or study.variants:
                stages.append((name, dataset, variant, len(study.seeds)))
                if variant in study.extra_seeds.variants:
                    stages.append((f"{name}-extra", dataset, variant, len(study.extra_seeds.seeds)))
    folder, full = scratch_project(args.datasets, args.epochs)
    print(
        f"{len(stages)} train stages of {', '.join(args.datasets)}, {args.epochs} epoch(s) per run, "
        f"{args.jobs} at a time, in {folder}",
        flush=True,
    )

    scaled = []  # each stage's seconds with its dataset's full epochs
    epoch_seconds = 0.0
    runs = 0
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_stage, folder, g, d, v): (g, d, v, n) for g, d, v, n in stages}
            for future in as_completed(futures):
                group, dataset, variant, seeds = futures[future]
                try:
                    seconds, epochs = future.result()
                except subprocess.CalledProcessError:
                    pool.shutdown(cancel_futures=True)  # the queued stages need not run
                    raise
                epoch_seconds, runs = epoch_seconds + sum(epochs), runs + seeds
                scaled.append(seconds + sum(epochs) * (full[dataset] / args.epochs - 1))
                print(
                    f"train-{group}@{dataset}-{variant}: {seeds} run(s) {seconds:6.1f} s, "
                    f"of which epochs {sum(epochs):6.1f} s",
                    flush=True,
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    wall = time.perf_counter() - start
    print(
        f"{runs} runs, {args.epochs} epoch(s) each, {args.jobs} stage(s) at a time: {wall:.0f} s wall "
        f"({epoch_seconds:.0f} s in epochs summed over the stages)"
    )
    budgets = ", ".join(f"{d} {full[d]}" for d in args.datasets)
    estimate = makespan(scaled, args.jobs)
    print(
        f"with each dataset's own epochs per run ({budgets}): about {estimate:.0f} s = "
        f"{estimate / 60:.1f} min on {args.jobs} slot(s) ({sum(scaled) / 3600:.2f} stage-hours)"
    )


if __name__ == "__main__":
    main()
