"""Stage table1-report: Table 1 of the STN paper at its protocol, and the budget curve."""

import json
from pathlib import Path

import pandas as pd

from stn.analysis.benchmark import compare_all, error_figure, load_study, summarize
from stn.analysis.figures import save_figure
from stn.analysis.recipe_search import best_recipe, final_errors, load_search
from stn.analysis.stats import data_note, load_runs, one_device
from stn.analysis.table1 import budget_figure, budget_frame, fit_gap, load_recipe_study, recipe_study_runs
from stn.analysis.table1_report import table1_report
from stn.analysis.views import accuracy_headline, study_views, write_views
from stn.atomic import write_json, write_text
from stn.entry import run_main
from stn.layout import PROVENANCE
from stn.params.study import load_params

FIGURES = Path("plots/table1")


def main() -> None:
    params = load_params()
    study, budget = params.studies.table1, params.studies.budget
    FIGURES.mkdir(parents=True, exist_ok=True)
    if not study.recipes:
        none = "No Table 1 study configured (`studies.table1` is empty).\n"
        write_text("reports/table1.md", f"# Table 1\n\n{none}")
        write_text(FIGURES / "README.md", none)  # a folder git keeps, as DVC expects the output
        write_json(Path("metrics/table1.json"), {})
        empty = pd.DataFrame(
            columns=["dataset", "variant", "n_seeds", "accuracy_mean", "ci95_low", "ci95_high"]
        )
        write_views(Path("plots/views/table1"), study_views(empty, pd.DataFrame()))
        return
    (recipe,) = study.recipes  # one recipe: checked by the params schema
    runs, histories = load_recipe_study("table1", study, recipe)
    summary = summarize(runs)
    comparisons = compare_all(runs, study.baseline)
    kinds = {d: params.dataset(d).distortion.kind for d in study.datasets}
    for d in study.datasets:
        save_figure(error_figure(runs, summary, d, kinds[d]), FIGURES / f"error-{d}.png")
    tutorial_runs, _ = load_study("distorted", params.studies.distorted)
    tutorial = compare_all(tutorial_runs, params.compare.baseline)
    one_device(runs, tutorial_runs)  # one report: runs of one device (the budget's below)
    curve = None
    if budget.recipes:  # Table 1's recipe with other epochs, each its own (params schema)
        by_epochs = {
            params.train_for(study.datasets[0], r).epochs: load_runs(recipe_study_runs("budget", budget, r))
            for r in budget.recipes
        }
        by_epochs[params.train_for(study.datasets[0], recipe).epochs] = runs[
            runs["dataset"].isin(budget.datasets)
            & runs["variant"].isin(budget.variants)
            & runs["seed"].isin(budget.seeds)
        ]
        one_device(runs, *by_epochs.values())
        curve = budget_frame(by_epochs)
        save_figure(budget_figure(curve, kinds), FIGURES / "budget.png")
    search = params.studies.search
    search_best = best_recipe(final_errors(load_search(search))) if search.recipes else None
    write_json(Path("metrics/table1.json"), accuracy_headline(summary))
    write_views(Path("plots/views/table1"), study_views(summary, histories))
    note = data_note(json.loads(PROVENANCE.read_text()))
    fit = fit_gap(histories, summary)
    report = table1_report(
        params, recipe, summary, comparisons, tutorial, curve, kinds, note, search_best, fit
    )
    write_text("reports/table1.md", report)
    print(report.split("**Headline.** ", 1)[1].split("\n\n", 1)[0])


if __name__ == "__main__":
    run_main(main)
