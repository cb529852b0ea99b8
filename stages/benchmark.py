"""Stage benchmark: the distorted-MNIST study: summary, comparisons, figures, reports/benchmark.md."""

import json
from pathlib import Path

from stn.analysis.benchmark import (
    compare_all,
    error_figure,
    load_rotation_curves,
    load_study,
    rotation_figure,
    summarize,
)
from stn.analysis.benchmark_report import benchmark_report
from stn.analysis.cost import cost_frame, input_shape_of
from stn.analysis.figures import save_figure
from stn.analysis.stats import write_summary
from stn.analysis.views import accuracy_headline, study_views, write_views
from stn.atomic import write_json, write_text
from stn.entry import run_main
from stn.layout import PROVENANCE
from stn.params.study import load_params

FIGURES = Path("plots/benchmark")


def main() -> None:
    params = load_params()
    study, upright = params.studies.distorted, params.studies.upright
    runs, histories = load_study("distorted", study)
    summary = summarize(runs)
    comparisons = compare_all(runs, params.compare.baseline)
    for dataset, rows in summary.groupby("dataset", sort=False):
        write_summary(Path("metrics/distorted"), rows.set_index("variant"), prefix=f"{dataset}-")
    kinds = {d: params.dataset(d).distortion.kind for d in study.datasets}
    for d in study.datasets:
        save_figure(error_figure(runs, summary, d, kinds[d]), FIGURES / f"error-{d}.png")
    curves = load_rotation_curves(
        [p for d in upright.rotation_curve for v in upright.variants for p in upright.runs("upright", d, v)]
        + [p for d in study.rotation_curve for v in study.variants for p in study.runs("distorted", d, v)]
    )
    if len(curves):
        save_figure(rotation_figure(curves), FIGURES / "rotation.png")
    write_json(Path("metrics/distorted.json"), accuracy_headline(summary))
    write_views(Path("plots/views/distorted"), study_views(summary, histories, curves))
    provenance = json.loads(PROVENANCE.read_text())
    cost = cost_frame(
        runs,
        {v: params.variant(v) for v in study.variants},
        {d: input_shape_of(params.dataset(d)) for d in study.datasets},
    )
    report = benchmark_report(params, runs, summary, comparisons, histories, curves, kinds, provenance, cost)
    write_text("reports/benchmark.md", report)
    print(report.split("## Headline\n\n", 1)[1].split("\n\n", 1)[0])


if __name__ == "__main__":
    run_main(main)
