"""Training core-hours of a committed study, from its training curves' `seconds` column.

    python bench/study_hours.py            # the default study as first committed (89087f4^)
    python bench/study_hours.py COMMIT

Until commit 89087f4 each run's curve (plots/train/.../*.csv) recorded the wall seconds of every
epoch; since then wall times stay in the logs, as an output must not change from one rerun to the
next. Each run trained on one thread of one core (train.threads: 1), so the seconds summed over
the runs are core-seconds. Reads the files from git; needs no checkout of COMMIT.
"""

from __future__ import annotations

import argparse
import io
import subprocess
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("commit", nargs="?", default="89087f4^")
    args = parser.parse_args()
    rows = []
    for path in git("ls-tree", "-r", "--name-only", args.commit, "plots/train").split():
        curve = pd.read_csv(io.StringIO(git("show", f"{args.commit}:{path}")))
        if "seconds" not in curve:
            raise SystemExit(f"{path} at {args.commit} has no seconds column: wall times left the curves")
        dataset = Path(path).parts[-2]
        rows.append({"dataset": dataset, "epochs": len(curve), "seconds": curve["seconds"].sum()})
    runs = pd.DataFrame(rows)
    table = runs.groupby("dataset").agg(
        runs=("seconds", "size"), epochs=("epochs", "sum"), seconds=("seconds", "sum")
    )
    table["core-hours"] = (table.pop("seconds") / 3600).round(2)
    print(f"commit {git('rev-parse', '--short', args.commit).strip()}: training curves in plots/train")
    print(table.to_markdown())
    print(f"total: {len(runs)} runs, {runs['seconds'].sum() / 3600:.2f} core-hours of training")


if __name__ == "__main__":
    main()
