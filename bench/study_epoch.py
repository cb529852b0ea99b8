"""Wall time of one dataset's whole study, a few epochs per run, through the stage scripts (no DVC).

    python bench/study_epoch.py rot                 # every train stage of rot, 1 epoch per run
    python bench/study_epoch.py rot --variants cnn  # a smoke test

Every train stage of the study that lists the dataset (GROUP@DATASET-VARIANT, GROUP being the
study and, for its extra seeds, STUDY-extra) runs as `dvc repro` runs it, `python
stages/train.py GROUP DATASET VARIANT`, in a scratch folder: a copy of params.yaml with the
dataset's train.epochs set to --epochs, and data/ linked to the project's (prepare the dataset
first: `python stages/download.py && python stages/prepare.py DATASET`). Prints each stage's wall
time and the epoch seconds its runs logged, then the time of the dataset's full budget of epochs:
the stages' overhead (start-up, data loading, saving) plus the logged epoch seconds scaled up.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r" epoch \d+/\d+ .* ([\d.]+)s \(\d+ img/s\)$")


def scratch_project(dataset: str, epochs: int) -> tuple[Path, int]:
    """A folder with params.yaml (the dataset's epochs set to `epochs`) and data/ linked;
    returns it and the dataset's own number of epochs."""
    folder = Path(tempfile.mkdtemp(prefix="stn-study-"))
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    train = raw["datasets"][dataset].get("train") or {}
    full = train.get("epochs", raw["train"]["epochs"])
    raw["datasets"][dataset]["train"] = train | {"epochs": epochs}
    (folder / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (folder / "data").symlink_to(ROOT / "data")
    return folder, full


def run_stage(folder: Path, group: str, dataset: str, variant: str) -> tuple[float, list[float]]:
    """Wall seconds of one train stage run in `folder`, and the epoch seconds its runs logged."""
    start = time.perf_counter()
    cmd = [sys.executable, str(ROOT / "stages" / "train.py"), group, dataset, variant]
    out = subprocess.run(cmd, cwd=folder, check=True, stdout=subprocess.PIPE, text=True).stdout
    seconds = time.perf_counter() - start
    return seconds, [float(m.group(1)) for line in out.splitlines() if (m := EPOCH_LINE.search(line))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variants", nargs="+", help="default: every variant of the study")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from stn.params.study import load_params

    params = load_params(ROOT / "params.yaml")
    if not (ROOT / "data" / args.dataset / "meta.json").is_file():
        raise SystemExit(f"data/{args.dataset}: not prepared; run stages/download.py and stages/prepare.py")
    stages = []  # (group, variant, seeds)
    for name, study in params.studies:
        if args.dataset in study.datasets:
            for variant in args.variants or study.variants:
                stages.append((name, variant, len(study.seeds)))
                if variant in study.extra_seeds.variants:
                    stages.append((f"{name}-extra", variant, len(study.extra_seeds.seeds)))
    folder, full = scratch_project(args.dataset, args.epochs)
    print(f"{len(stages)} train stages of {args.dataset}, {args.epochs} epoch(s) per run, in {folder}")

    total = epoch_seconds = 0.0
    runs = 0
    try:
        for group, variant, seeds in stages:
            seconds, epochs = run_stage(folder, group, args.dataset, variant)
            total, epoch_seconds, runs = total + seconds, epoch_seconds + sum(epochs), runs + seeds
            print(
                f"train-{group}@{args.dataset}-{variant}: {seeds} run(s) {seconds:6.1f} s, "
                f"of which epochs {sum(epochs):6.1f} s",
                flush=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    overhead = total - epoch_seconds
    print(
        f"{runs} runs, {args.epochs} epoch(s) each: {total:.0f} s ({epoch_seconds:.0f} s in epochs, "
        f"{overhead:.0f} s start-up, loading and saving)"
    )
    estimate = overhead + epoch_seconds * full / args.epochs
    print(f"{args.dataset} with its {full} epochs per run: about {estimate:.0f} s = {estimate / 60:.1f} min")


if __name__ == "__main__":
    main()
