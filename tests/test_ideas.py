"""The new-ideas part of the benchmark report: what an idea is, stability, the validation
choice, the significance marks and the headline, on small cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd

from stn.analysis.ideas import (
    best_on_validation,
    changes,
    headline,
    idea_paragraph,
    ideas_table,
    stability,
    stability_table,
)
from stn.variant import VariantSpec

BASE = VariantSpec(output_size=(28, 28))


def test_an_idea_is_what_it_changes_in_the_baseline() -> None:
    fading = VariantSpec(output_size=(28, 28), identity_penalty=1.0, identity_penalty_epochs=3)
    assert changes(fading, BASE) == {"identity_penalty": 1.0, "identity_penalty_epochs": 3}
    text = idea_paragraph("stn-idpen", fading, BASE)
    assert text.startswith("- **`stn-idpen`** (identity_penalty: 1.0, identity_penalty_epochs: 3): ")
    assert "(weight 1.0)" in text and "first 3 epochs" in text
    assert "8 parameters" in idea_paragraph("p", VariantSpec(transform="projective"), VariantSpec())
    assert "`align_corners: True`." in idea_paragraph("a", VariantSpec(align_corners=True), VariantSpec())


def _history(variant: str, dataset: str, seed: int, val: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": dataset,
            "variant": variant,
            "seed": seed,
            "epoch": range(1, len(val) + 1),
            "val_accuracy": val,
        }
    )


def test_stability_counts_collapsed_runs() -> None:
    histories = pd.concat(
        [
            _history("a", "rts", 0, [0.15, 0.9, 0.95]),  # low only in epoch 1: not collapsed
            _history("a", "rts", 1, [0.6, 0.106, 0.9]),  # fell to chance, recovered: collapsed
            _history("b", "rts", 0, [0.6, 0.7, 0.8]),
            _history("b", "rts", 1, [0.6, 0.7, 0.8]),
        ]
    )
    runs = pd.DataFrame(
        {
            "dataset": "rts",
            "variant": ["a", "a", "b", "b"],
            "seed": [0, 1, 0, 1],
            "accuracy": [0.95, 0.9, 0.8, 0.1],
        }
    )
    table = stability(histories, runs)
    assert table.loc["a"].tolist() == [2, 1, 0.9] and table.loc["b"].tolist() == [2, 1, 0.1]
    assert stability_table(table).splitlines()[2] == "| a | 2 | 1 | 10.00 |"


def test_best_idea_is_chosen_on_validation_not_test() -> None:
    histories = pd.concat(
        [
            _history("x", "rot", 0, [0.5, 0.96]),
            _history("x", "rts", 0, [0.5, 0.90]),  # mean 0.93
            _history("y", "rot", 0, [0.5, 0.95]),
            _history("y", "rts", 0, [0.5, 0.92]),  # mean 0.935: best
            _history("stn-conv", "rot", 0, [0.5, 0.99]),  # the baseline is not an idea
        ]
    )
    assert best_on_validation(histories, ["x", "y"], [0]) == "y"
    assert best_on_validation(histories, [], [0]) is None
    # Extra seeds of one idea (run after the choice) do not take part in it.
    more = pd.concat([histories, _history("x", "rot", 3, [0.5, 0.99]), _history("x", "rts", 3, [0.5, 0.99])])
    assert best_on_validation(more, ["x", "y"], [0]) == "y"
    assert best_on_validation(more, ["x", "y"], [0, 3]) == "x"  # were they counted, x would win


def _comparison(
    variant: str, dataset: str, diff: float, holm: float, mcnemar: list[float], tips: int
) -> dict:
    return {
        "dataset": dataset,
        "variant": variant,
        "baseline": "stn-conv",
        "diff_mean": diff,
        "paired_t_p_holm": holm,
        "mcnemar_p_per_seed": mcnemar,
        "mcnemar_direction_per_seed": [int(np.sign(tips))] * len(mcnemar),
        "only_variant_right": 50 + tips,
        "only_baseline_right": 50,
    }


COMPARISONS = pd.DataFrame(
    [
        _comparison("y", "rot", 0.004, 0.01, [0.01, 0.02, 0.03], 30),  # better, Holm
        _comparison("y", "rts", 0.002, 0.2, [0.01, 0.02, 0.03], 30),  # better, McNemar every seed
        _comparison("y", "proj", -0.001, 0.9, [0.5, 0.02, 0.03], -5),  # neither
        _comparison("y", "elastic", -0.003, 0.04, [0.01, 0.01, 0.01], -30),  # worse, Holm
    ]
)


def test_ideas_table_marks_holm_and_mcnemar() -> None:
    table = ideas_table(COMPARISONS, ["y", "z"], ["rot", "rts", "proj", "elastic"]).splitlines()
    assert table[2] == "| y | -0.40 H | -0.20 M | +0.10 | +0.30 H |"
    assert table[3] == "| z | — | — | — | — |"
    # One seed significant the other way: not "every seed, the same way".
    mixed = COMPARISONS.copy()
    mixed.at[1, "mcnemar_direction_per_seed"] = [1, -1, 1]
    assert ideas_table(mixed, ["y"], ["rts"]).splitlines()[2] == "| y | -0.20 |"


def test_headline_says_where_the_best_idea_wins() -> None:
    summary = pd.DataFrame(
        {
            "dataset": ["rot", "rts", "proj", "elastic"],
            "variant": "y",
            "accuracy_mean": [0.994, 0.99, 0.99, 0.99],
        }
    )
    text = headline(COMPARISONS, summary, "y", "stn-conv", {"rot": 0.7, "rts": 0.5})
    assert "`y` did best on the validation split" in text
    assert "significantly after Holm correction, on rot, and a significantly higher one on elastic." in text
    no_wins = headline(COMPARISONS[COMPARISONS["dataset"] == "proj"], summary, "y", "stn-conv", {})
    assert "does not lower the test error of the conventional STN (`stn-conv`) significantly" in no_wins
    assert text.endswith("It matches or beats the paper's ST-CNN (affine) error on rot.")
    assert (
        headline(COMPARISONS, summary, None, "stn-conv", {})
        == "No idea variant ran against `stn-conv` in this study."
    )
