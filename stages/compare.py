"""Stage compare: the upright-MNIST study: summary over seeds, paired comparisons, report, figures."""

import json
from pathlib import Path

import pandas as pd

from stn.analysis.calibration import reliability_bins, reliability_figure
from stn.analysis.figures import accuracy_figure, curves_figure, save_figure
from stn.analysis.stats import (
    comparisons_table,
    load_runs,
    paired_comparisons,
    per_class_means,
    report,
    results_table,
    summarize_variants,
    write_summary,
)
from stn.atomic import write_text
from stn.entry import run_main
from stn.layout import PROVENANCE, RunPaths
from stn.params import load_params


def _confidence(dataset: str, variant: str, seeds: list[int]):
    """Confidence and correctness of every test prediction of a variant, seeds pooled."""
    frames = [pd.read_csv(RunPaths(dataset, variant, s).predictions) for s in seeds]
    pooled = pd.concat(frames, ignore_index=True)
    return pooled["confidence"].to_numpy(), (pooled["actual"] == pooled["predicted"]).to_numpy()


def main() -> None:
    params = load_params()
    study = params.studies.upright
    (dataset,) = study.datasets
    runs = load_runs(dataset, study.variants, study.seeds)
    summary = summarize_variants(runs)
    comparisons = paired_comparisons(runs, params.compare.baseline, study.seeds)
    write_summary(Path("metrics/upright"), summary)
    provenance = json.loads(PROVENANCE.read_text())
    per_class = per_class_means(dataset, study.variants, study.seeds)
    write_text("reports/results.md", report(summary, comparisons, params, provenance, runs, per_class))
    bins = {v: reliability_bins(*_confidence(dataset, v, study.seeds)) for v in study.variants}
    save_figure(
        reliability_figure(bins, "Upright MNIST: reliability, all seeds pooled"),
        Path("plots/compare/reliability.png"),
    )
    history = pd.concat(
        [
            pd.read_csv(RunPaths(dataset, v, s).history).assign(variant=v, seed=s)
            for v in study.variants
            for s in study.seeds
        ]
    )
    save_figure(accuracy_figure(runs, summary), Path("plots/compare/accuracy.png"))
    save_figure(curves_figure(history), Path("plots/compare/curves.png"))
    print(results_table(summary))
    print(comparisons_table(comparisons))


if __name__ == "__main__":
    run_main(main)
