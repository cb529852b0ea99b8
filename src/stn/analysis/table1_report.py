"""reports/table1.md: the STN paper's Table 1 at its protocol, on our budget, in words and tables."""

from __future__ import annotations

import pandas as pd

from stn.analysis.benchmark import PAPER_BATCH, PAPER_ITERATIONS, comparisons_table, error_table
from stn.analysis.table1 import (
    RECHECKS,
    fit_gap_table,
    paper_share,
    ranking_changes,
    ranking_table,
    reached,
    recheck_table,
    still_falling,
)
from stn.params.run import RECIPE_SEP


def _names(rows: pd.DataFrame) -> str:
    return ", ".join(rows["dataset"]) or "none"


def _count(hits: pd.DataFrame, model: str) -> str:
    """How many datasets the model's mean reaches the paper's number on, and where the paper's
    number lies against our 95% interval."""
    rows = hits[hits["model"] == model]
    hit = rows[rows["reached"]]
    below, above = rows[rows["interval"] == "below"], rows[rows["interval"] == "above"]
    return (
        f"{len(hit)} of {len(rows)} datasets ({_names(hit)}); our 95% interval lies wholly below the "
        f"paper's number on {len(below)} ({_names(below)}) and wholly above it on {len(above)} "
        f"({_names(above)})"
    )


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _budget_section(budget: pd.DataFrame | None) -> str:
    if budget is None or budget.empty:
        return "No budget curve was run (`studies.budget` is empty)."
    changed = ranking_changes(budget)
    verdict = (
        f"The order of the mean errors changes with the budget on {', '.join(changed)}."
        if changed
        else "The order of the mean errors is the same at every budget."
    )
    falling = still_falling(budget)
    lines = [
        "| dataset | variant | epochs | mean test error % | still falling? |",
        "| --- | --- | --- | --- | --- |",
    ]
    for _, r in falling.iterrows():
        word = "yes, beyond seed noise" if r["clearly"] else "yes, within seed noise" if r["falls"] else "no"
        lines.append(
            f"| {r['dataset']} | `{r['variant']}` | {r['from_epochs']} -> {r['to_epochs']} "
            f"| {r['from_error']:.2f} -> {r['to_error']:.2f} | {word} |"
        )
    return f"""The same recipe with fewer epochs (`studies.budget`), beside Table 1's runs;
the paper's CNN and ST-CNN (affine) errors are the horizontal lines.

![test error against the training budget](../plots/table1/budget.png)

{ranking_table(budget)}

{verdict} With a few seeds, variants whose intervals overlap may swap places by chance.

Between the two largest budgets (beyond seed noise: the two 95% t-intervals do not overlap):

{chr(10).join(lines)}

Where the error still falls at the largest budget, more epochs would likely close part of the
gap to the paper; where it has stopped falling, the gap is not a matter of this recipe's budget."""


def _recipe_text(train) -> str:
    optimizer = "AdamW" if train.optimizer == "adamw" else "SGD"
    extras = [f"lr {train.lr}", f"batch {train.batch_size}", f"schedule `{train.schedule}`"]
    if train.optimizer == "sgd":
        extras.append(f"momentum {train.momentum}" + (" (Nesterov)" if train.nesterov else ""))
    extras.append(f"weight decay {train.weight_decay}")
    return f"{optimizer}, " + ", ".join(extras)


def _grids(summary: pd.DataFrame, params, recipe: str) -> str:
    """The STN output grid of the ST model with the lowest mean test error, per dataset."""
    study = params.studies.table1
    lines = [
        "| dataset | model (lowest mean test error among the ST-CNNs) | transformer output, seed "
        f"{study.seeds[0]} |",
        "| --- | --- | --- |",
    ]
    for dataset in study.datasets:
        rows = summary[
            (summary["dataset"] == dataset) & summary["variant"].map(lambda v: params.variant(v).stn)
        ]
        if rows.empty:
            continue
        best = rows.sort_values("accuracy_mean", ascending=False, kind="stable").iloc[0]["variant"]
        image = f"../plots/images/table1{RECIPE_SEP}{recipe}/{dataset}/{best}/s{study.seeds[0]}/stn.png"
        lines.append(f"| {dataset} | `{best}` | ![{dataset} {best}]({image}) |")
    return "\n".join(lines)


def _fit_section(fit: pd.DataFrame, datasets: list[str], fresh: frozenset[str]) -> str:
    """`fresh`: the variants that draw their training distortions afresh every epoch."""
    fixed = fit[~fit["variant"].isin(fresh)]
    worst = None if fixed.empty else fixed.loc[fixed["train_error"].idxmax()]
    worst_text = (
        ""
        if worst is None
        else f" The largest training error of the others is {worst['train_error']:.2f}% "
        f"(`{worst['variant']}` on {worst['dataset']})."
    )
    fresh_text = (
        ""
        if not fresh
        else f" The variants marked * ({', '.join(f'`{v}`' for v in sorted(fresh))}) draw their "
        "distortions afresh every epoch instead: their training error is measured on digits they "
        "have not seen before, and their test error shows what new images each epoch are worth."
    )
    return f"""
## Training error against test error

Mean over seeds of the training error in each run's last epoch (%, on the training batches as
they were trained) / the test error (%). Each dataset's training images are distorted once, when
the dataset is prepared, so every epoch shows a model the same distorted digits.{fresh_text}{worst_text}
Where a model fits its fixed training images while its test error stays above the paper's, more
epochs of the same images can close little of the gap.

{fit_gap_table(fit, datasets, fresh)}
"""


def table1_report(
    params,
    recipe: str,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    tutorial_comparisons: pd.DataFrame,
    budget: pd.DataFrame | None,
    kinds: dict[str, str],
    data: str,
    search_best: str | None,
    fit: pd.DataFrame | None = None,
) -> str:
    """The report. `summary`, `comparisons`: Table 1's runs (benchmark.summarize, compare_all,
    against studies.table1.baseline); `tutorial_comparisons`: the distorted study's, against
    compare.baseline; `budget`: table1.budget_frame of the budget curve, None without one;
    `data`: which MNIST produced the numbers (stats.data_note); `search_best`: the recipe
    search's best recipe (recipe_search.best_recipe), None without a search; `fit`: table1.fit_gap
    of Table 1's runs, None to leave that section out."""
    study = params.studies.table1
    datasets = study.datasets
    train = params.train_for(datasets[0], recipe)
    images = [params.mnist.train_count - params.dataset(d).validation for d in datasets]
    share = [paper_share(train.epochs, n) for n in images]
    share_text = f"{100 * min(share):.1f}" + ("" if min(share) == max(share) else f"-{100 * max(share):.1f}")
    tutorial_epochs = _span([params.train_for(d).epochs for d in params.studies.distorted.datasets])
    hits = reached(summary, kinds)
    baseline = study.baseline
    seeds = ", ".join(map(str, study.seeds))
    extra = study.extra_seeds
    extra_text = (
        f", and seeds {', '.join(map(str, extra.seeds))} for {', '.join(f'`{v}`' for v in extra.variants)}"
        if extra.variants
        else ""
    )
    figures = "\n".join(f"![test error on {d}](../plots/table1/error-{d}.png)" for d in datasets)
    if search_best is None:
        chosen = "No recipe search was run for it (`studies.search` is empty)."
    elif params.train_for(datasets[0], search_best).model_copy(update={"epochs": train.epochs}) == train:
        chosen = (
            f"It is the recipe search's best on the validation split (`{search_best}`, "
            "reports/recipe-search.md) with more epochs."
        )
    else:
        chosen = (
            f"The recipe search (reports/recipe-search.md) found `{search_best}` best on the "
            "validation split; this recipe is not that one."
        )
    budget_section = _budget_section(budget)
    fresh = frozenset(v for v in study.variants if params.variant(v).augment)
    fit_section = "" if fit is None or fit.empty else _fit_section(fit, datasets, fresh)
    rechecked = ", ".join(f"`{a}` -> `{b}`" for a, b in RECHECKS.items())
    return f"""# Table 1 of the STN paper at its protocol, on our budget

Can the paper's own models (Jaderberg et al. 2015, appendix A: a CNN and ST-CNNs with about as
many parameters) reach its Table 1 when trained with {train.epochs} epochs, {share_text}% of the
images the paper's models saw ({PAPER_ITERATIONS:,} iterations of batch {PAPER_BATCH})?

**Headline.** Our CNN's mean test error, rounded to 0.1 as the paper's are, is at or below the
paper's CNN error on {_count(hits, "CNN")}. Our ST-CNN (affine) reaches the paper's ST-CNN
(affine) error on {_count(hits, "ST-CNN affine")}.

{data}

## Protocol

- Models: `stn.models.paper`, one per row below ({len(datasets)} datasets x {len(study.variants)}
  variants, seeds {seeds}{extra_text}).
- Recipe `{recipe}` for every dataset and variant: {_recipe_text(train)}, {train.epochs} epochs of
  {_span(images)} training images. {chosen} The test set is evaluated once per run, for the
  numbers below.
- Comparisons: each variant against `{baseline}` on the same dataset, paired by seed; paired
  t-test Holm-corrected over the whole table, McNemar's exact test per seed.

## Table 1

Test error % (mean ± sd over seeds, 95% t-interval), and the paper's numbers (single runs as
published; the paper reports no spread).

{error_table(summary, datasets, kinds)}

{figures}

## Against the ST-CNN (affine)

{comparisons_table(comparisons)}

## The tutorial budget's verdicts, re-checked

The distorted benchmark (reports/benchmark.md) compared ideas with the conventional STN on the
PyTorch tutorial's small networks for {tutorial_epochs} epochs. Here each is re-tested by its
counterpart on the paper's networks ({rechecked}), against the ST-CNN (affine).

{recheck_table(tutorial_comparisons, comparisons, datasets)}

## Budget curve

{budget_section}
{fit_section}
## What the transformers do

{_grids(summary, params, recipe)}
"""
