"""The recipe search (studies.search): training recipes compared on the validation split only.

Each run of the search is (dataset, variant, recipe, seed), trained by stage
train-search@DATASET-VARIANT-RECIPE into the stage group `search/RECIPE`. A recipe is judged
by the validation error of its runs after their last epoch; no run of the search is ever
evaluated on the test set, so choosing the recipe for a study from this report leaves that
study's test numbers untouched (the test set is read once, by the study's own runs).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from stn.analysis.stats import load_histories
from stn.params.run import RECIPE_SEP, TrainOverrides
from stn.params.study import RecipeSearchSpec
from stn.run_paths import RunPaths, StagePaths
from stn.training.optim import ONECYCLE_END_DIV, ONECYCLE_START_DIV, ONECYCLE_WARMUP

SEARCH = "search"  # the study's name: its stage groups are search/RECIPE
RECIPE_KEYS = ["optimizer", "lr", "momentum", "nesterov", "weight_decay", "schedule", "epochs", "batch_size"]


def search_runs(study: RecipeSearchSpec, recipe: str, root: Path = Path(".")) -> list[RunPaths]:
    """The files of every run of the search with `recipe`, in the study's order."""
    return [
        StagePaths(f"{SEARCH}{RECIPE_SEP}{recipe}", dataset, variant, root).run(seed)
        for dataset in study.datasets
        for variant in study.variants
        for seed in study.seeds
    ]


def load_search(study: RecipeSearchSpec, root: Path = Path(".")) -> pd.DataFrame:
    """Every search run's per-epoch history, one row per (recipe, dataset, variant, seed, epoch),
    with `val_error` in %. Raises StnError naming the first run not yet trained."""
    frames = [load_histories(search_runs(study, r, root)).assign(recipe=r) for r in study.recipes]
    histories = pd.concat(frames, ignore_index=True)
    histories["val_error"] = 100 * (1 - histories["val_accuracy"])
    return histories


def final_errors(histories: pd.DataFrame) -> pd.DataFrame:
    """Validation error (%) after the last epoch, mean over seeds: rows recipe (study order),
    columns "DATASET VARIANT" in study order, plus `mean` over them. Sorted by nothing: the
    reader sees the recipes as params.yaml lists them."""
    last = histories[
        histories["epoch"]
        == histories.groupby(["recipe", "dataset", "variant", "seed"])["epoch"].transform("max")
    ]
    table = last.pivot_table(
        index="recipe", columns=["dataset", "variant"], values="val_error", aggfunc="mean", sort=False
    )
    table.columns = [f"{dataset} {variant}" for dataset, variant in table.columns]
    table["mean"] = table.mean(axis=1)
    return table


def best_recipe(table: pd.DataFrame) -> str:
    """The recipe with the lowest mean validation error over the datasets and variants (the
    first listed on a tie)."""
    return str(table["mean"].idxmin())


def search_view(histories: pd.DataFrame | None) -> pd.DataFrame:
    """Validation error per epoch, mean over seeds, one row per (dataset, line, epoch), a line
    being `variant / recipe`: the long format that .dvc/plots/variant-lines-log draws. None
    (no search): the columns only."""
    columns = ["dataset", "variant", "epoch", "val_error", "seeds"]
    if histories is None:
        return pd.DataFrame(columns=columns)
    grouped = histories.groupby(["dataset", "variant", "recipe", "epoch"], sort=False)["val_error"]
    out = grouped.agg(val_error="mean", seeds="count").reset_index()
    out["variant"] = out["variant"] + " / " + out["recipe"]
    return out[columns]


def _recipes_table(recipes: dict[str, TrainOverrides]) -> str:
    rows = {name: spec.model_dump() for name, spec in recipes.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")[RECIPE_KEYS].rename_axis("recipe")
    return frame.to_markdown()


def search_report(
    study: RecipeSearchSpec,
    recipes: dict[str, TrainOverrides],
    histories: pd.DataFrame,
    data: str,
) -> str:
    """reports/recipe-search.md. `recipes`: params.yaml's (each states every setting);
    `data`: which MNIST produced the numbers (stats.data_note)."""
    table = final_errors(histories)
    best = best_recipe(table)
    seeds = ", ".join(str(s) for s in study.seeds)
    noise = (
        "With one seed per cell, differences of a few tenths of a point are within seed noise;"
        if len(study.seeds) == 1
        else f"Each cell is the mean of {len(study.seeds)} seeds;"
    )
    return f"""# Recipe search for the paper's models (validation split only)

Which training recipe should the STN paper's models be trained with on our budget? Each recipe
below trained {", ".join(f"`{v}`" for v in study.variants)} on {", ".join(f"`{d}`" for d in study.datasets)}
(seed(s) {seeds}), and is judged by the error on each dataset's validation split (the last
training images, held out) after its last epoch. No run here is evaluated on the test set.

{data}

## The recipes

Each recipe states every training setting. `step`: the learning rate is divided by 10 after
each third of the epochs (the paper's schedule, compressed). `onecycle`: warm-up over the first
{ONECYCLE_WARMUP:.0%} of the steps from lr/{ONECYCLE_START_DIV:g}, then cosine annealing to \
lr/{ONECYCLE_START_DIV * ONECYCLE_END_DIV:g} (PyTorch's `OneCycleLR` with `cycle_momentum=False`: the
learning rate only; AdamW's betas stay at their defaults).

{_recipes_table({r: recipes[r] for r in study.recipes})}

## Validation error (%) after the last epoch

Mean over the seeds; `mean` averages the datasets and variants.

{table.to_markdown(floatfmt=".2f")}

Lowest mean validation error: **`{best}`**.
{noise} the choice rests on the mean over every dataset and variant.
Validation error per epoch: `dvc plots show plots/views/search/validation.csv`.
"""
