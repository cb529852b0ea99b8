"""Stage compare: summary over seeds, paired comparisons, report and figures."""

import json
from pathlib import Path

import pandas as pd

from stn.atomic import write_json, write_text, write_with
from stn.compare import (
    comparisons_table,
    load_runs,
    paired_comparisons,
    report,
    results_table,
    summarize_variants,
    summary_json,
)
from stn.entry import run_main
from stn.figures import accuracy_figure, curves_figure, save_figure
from stn.layout import PROVENANCE, RunPaths
from stn.params import load_params


def main() -> None:
    params = load_params()
    variants, seeds = list(params.variants), list(params.seeds)
    runs = load_runs(variants, seeds)
    summary = summarize_variants(runs)
    comparisons = paired_comparisons(runs, params.compare.baseline, seeds)
    write_json("metrics/summary.json", summary_json(summary))
    write_with("metrics/summary.csv", lambda tmp: summary.to_csv(tmp, index_label="variant"))
    provenance = json.loads(PROVENANCE.read_text())
    write_text("reports/results.md", report(summary, comparisons, params, provenance))
    history = pd.concat(
        [pd.read_csv(RunPaths(v, s).history).assign(variant=v, seed=s) for v in variants for s in seeds]
    )
    save_figure(accuracy_figure(runs, summary), Path("plots/compare/accuracy.png"))
    save_figure(curves_figure(history), Path("plots/compare/curves.png"))
    print(results_table(summary))
    print(comparisons_table(comparisons))


if __name__ == "__main__":
    run_main(main)
