"""Stage compare: the upright-MNIST study: summary over seeds, paired comparisons, report, figures."""

import json
from pathlib import Path

import pandas as pd

from stn.analysis.calibration import reliability_bins, reliability_figure
from stn.analysis.cost import cost_frame, input_shape_of
from stn.analysis.figures import accuracy_figure, curves_figure, save_figure
from stn.analysis.stats import (
    ORIGINAL_RUNS,
    claim_comparisons,
    comparisons_table,
    load_histories,
    load_runs,
    paired_comparisons,
    per_class_means,
    per_class_scores,
    results_table,
    summarize_variants,
    write_summary,
)
from stn.analysis.upright_report import upright_report
from stn.analysis.validation import has_validation, validation_figure
from stn.analysis.views import accuracy_headline, study_views, write_views
from stn.atomic import write_json, write_text, write_with
from stn.entry import run_main
from stn.layout import PROVENANCE
from stn.params.study import load_params
from stn.run_paths import RunPaths

FIGURES = Path("plots/compare")


def _confidence(runs: list[RunPaths]):
    """Confidence and correctness of every test prediction of these runs, pooled."""
    pooled = pd.concat([pd.read_csv(p.predictions) for p in runs], ignore_index=True)
    return pooled["confidence"].to_numpy(), (pooled["actual"] == pooled["predicted"]).to_numpy()


def main() -> None:
    params = load_params()
    study = params.studies.upright
    (dataset,) = study.datasets
    paths = {v: study.runs("upright", dataset, v) for v in study.variants}
    every_run = [p for v in study.variants for p in paths[v]]
    runs = load_runs(every_run)
    summary = summarize_variants(runs)
    comparisons = paired_comparisons(runs, params.compare.baseline)
    claims = claim_comparisons(runs)
    write_summary(Path("metrics/upright"), summary)
    histories = load_histories(every_run)
    table = summary.rename_axis("variant").reset_index().assign(dataset=dataset)
    write_json(Path("metrics/upright.json"), accuracy_headline(table))
    write_views(Path("plots/views/upright"), study_views(table, histories))
    scores = per_class_scores(every_run)
    write_with(
        Path("reports/per-class.csv"), lambda tmp: scores.to_csv(tmp, index=False, float_format="%.6g")
    )
    report = upright_report(
        params,
        json.loads(PROVENANCE.read_text()),
        summary,
        comparisons,
        claims,
        runs,
        per_class_means(every_run),
        scores,
        histories,
        cost_frame(
            runs,
            {v: params.variant(v) for v in study.variants},
            {d: input_shape_of(params.dataset(d)) for d in study.datasets},
        ),
    )
    write_text("reports/results.md", report)
    references = {run.variant: (name, run.accuracy) for name, run in ORIGINAL_RUNS.items()}
    save_figure(accuracy_figure(runs, summary, references), FIGURES / "accuracy.png")
    bins = {v: reliability_bins(*_confidence(paths[v])) for v in study.variants}
    save_figure(
        reliability_figure(bins, "Upright MNIST: reliability, all seeds pooled"), FIGURES / "reliability.png"
    )
    save_figure(curves_figure(histories), FIGURES / "curves.png")
    if has_validation(histories):
        save_figure(
            validation_figure(histories, "Upright MNIST: validation accuracy"), FIGURES / "validation.png"
        )
    print(results_table(summary))
    print(comparisons_table(comparisons))


if __name__ == "__main__":
    run_main(main)
