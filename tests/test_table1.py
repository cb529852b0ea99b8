"""Table 1 at the paper's protocol and the budget curve: the analysis and a real tiny study."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import dvc, make_project, tiny_params

from stn.analysis.table1 import (
    budget_frame,
    fit_gap,
    fit_gap_table,
    paper_share,
    ranking_changes,
    ranking_table,
    reached,
    short_verdict,
    still_falling,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _summary(rows: list[tuple[str, str, float, float]]) -> pd.DataFrame:
    """(dataset, variant, mean error %, half-width of its 95% interval in pp)."""
    return pd.DataFrame(
        [
            {
                "dataset": d,
                "variant": v,
                "accuracy_mean": 1 - e / 100,
                "ci95_low": 1 - (e + h) / 100,
                "ci95_high": 1 - (e - h) / 100,
            }
            for d, v, e, h in rows
        ]
    )


def test_reached_compares_each_paper_row_with_the_paper() -> None:
    summary = _summary(
        [
            ("rot", "paper-cnn", 1.1, 0.05),  # paper 1.2: reached, interval wholly below
            ("rts", "paper-cnn", 0.84, 0.2),  # paper 0.8: rounds to 0.8, reached; interval overlaps
            ("proj", "paper-cnn", 1.9, 0.1),  # paper 1.5: not reached, interval wholly above
            ("rot", "paper-st-loclr", 0.1, 0.1),  # no row of the paper's table
        ]
    )
    hits = reached(summary, {"rot": "rot", "rts": "rts", "proj": "proj"})
    assert hits[["dataset", "paper", "reached", "interval"]].to_dict("records") == [
        {"dataset": "rot", "paper": 1.2, "reached": True, "interval": "below"},
        {"dataset": "rts", "paper": 0.8, "reached": True, "interval": "overlaps"},
        {"dataset": "proj", "paper": 1.5, "reached": False, "interval": "above"},
    ]
    assert hits["ours"].tolist() == pytest.approx([1.1, 0.84, 1.9])
    assert hits["ours_low"].tolist() == pytest.approx([1.05, 0.64, 1.8])


def test_paper_share_of_the_papers_budget() -> None:
    assert paper_share(27, 55000) == pytest.approx(27 * 55000 / (150_000 * 256))


def test_short_verdict_words() -> None:
    row = pd.Series({"diff_mean": 0.004, "paired_t_p_holm": 0.01})  # variant 0.4 pp more accurate
    assert short_verdict(row) == "-0.40 pp, Holm p 0.01: lower error"
    row = pd.Series({"diff_mean": -0.002, "paired_t_p_holm": 0.3})
    assert short_verdict(row).endswith(": no clear difference") and short_verdict(row).startswith("+0.20 pp")


def test_budget_ranking_and_whether_it_changes() -> None:
    def runs(errors: dict[str, list[float]]) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "dataset": "rot",
                    "variant": v,
                    "seed": s,
                    "accuracy": 1 - e / 100,
                    "loss": 0.1,
                    "ece": 0.01,
                    "macro_f1": 0.9,
                    "parameters": 10,
                }
                for v, es in errors.items()
                for s, e in enumerate(es)
            ]
        )

    frame = budget_frame({3: runs({"a": [5, 6], "b": [4, 4.5]}), 9: runs({"a": [2, 2.2], "b": [3, 3.1]})})
    assert frame[frame["epochs"] == 3].set_index("variant")["error"].to_dict() == pytest.approx(
        {"a": 5.5, "b": 4.25}
    )
    assert ranking_changes(frame) == ["rot"]
    table = ranking_table(frame)
    assert "| rot | 3 | `b` 4.25% < `a` 5.50% |" in table and "| rot | 9 | `a` 2.10% < `b` 3.05% |" in table
    assert ranking_changes(frame[frame["epochs"] == 9]) == []
    # a variant trained at one budget only does not make the ranking "change"
    extra = budget_frame(
        {3: runs({"a": [5, 6], "b": [4, 4.5]}), 9: runs({"a": [6, 6.2], "b": [3, 3.1], "c": [1, 1]})}
    )
    assert ranking_changes(extra) == []
    falling = still_falling(frame).set_index("variant")
    assert falling.loc["a", ["from_epochs", "to_epochs", "falls"]].tolist() == [3, 9, True]
    assert falling.loc["b", "falls"] and not still_falling(extra).set_index("variant").loc["a", "falls"]
    tight = budget_frame(
        {3: runs({"a": [5, 5.2, 5.1], "b": [4, 4.5, 3.5]}), 9: runs({"a": [2, 2.1, 2], "b": [3.5, 3, 4]})}
    )
    clearly = still_falling(tight).set_index("variant")["clearly"]
    assert clearly["a"] and not clearly["b"]  # b falls by 0.5 pp with a spread of 0.5 pp: seed noise


def test_fit_gap_takes_each_runs_last_epoch() -> None:
    histories = pd.DataFrame(
        [
            # dataset, variant, seed, epoch, training accuracy: the last epoch counts, not the best
            ("rot", "paper-cnn", 0, 1, 0.90),
            ("rot", "paper-cnn", 0, 2, 0.99),
            ("rot", "paper-cnn", 1, 2, 0.97),
            ("rot", "paper-cnn", 1, 1, 0.995),
            ("rts", "paper-cnn", 0, 1, 1.0),
        ],
        columns=["dataset", "variant", "seed", "epoch", "accuracy"],
    )
    summary = _summary(
        [("rts", "paper-cnn", 1.5, 0.1), ("rot", "paper-cnn", 2.0, 0.1), ("rot", "x", 3.0, 0.1)]
    )
    fit = fit_gap(histories, summary)
    assert fit[["dataset", "variant"]].values.tolist() == [["rts", "paper-cnn"], ["rot", "paper-cnn"]]
    assert fit["train_error"].tolist() == pytest.approx([0.0, 2.0])  # rot: mean of 1% and 3%
    assert fit["test_error"].tolist() == pytest.approx([1.5, 2.0])
    table = fit_gap_table(fit, ["rot", "rts", "proj"])
    assert "| paper-cnn | 2.00 / 2.00 | 0.00 / 1.50 | — |" in table
    assert "| paper-cnn * | 2.00 / 2.00 |" in fit_gap_table(fit, ["rot"], frozenset({"paper-cnn"}))


def test_table1_and_the_budget_curve_run_as_a_pipeline(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params()
    adamw = {"batch_size": 64, "optimizer": "adamw", "momentum": 0.0, "lr": 0.003, "schedule": "onecycle"}
    adamw.update(nesterov=False, weight_decay=0.01)
    params["recipes"] = {"tiny-e2": {"epochs": 2, **adamw}, "tiny-e1": {"epochs": 1, **adamw}}
    variants = ["paper-cnn", "paper-st-affine"]
    params["studies"]["table1"] = {
        "datasets": ["rot"],
        "variants": list(variants),  # a list of its own: safe_dump would write a YAML alias
        "recipes": ["tiny-e2"],
        "seeds": [0, 1],
        "baseline": "paper-st-affine",
        "extra_seeds": {"variants": ["paper-st-affine"], "seeds": [2]},
    }
    params["studies"]["budget"] = {
        "datasets": ["rot"],
        "variants": list(variants),
        "recipes": ["tiny-e1"],
        "baseline": "paper-st-affine",
        "seeds": [0, 1],
    }
    project = make_project(tmp_path / "p", params)
    result = dvc(project, "repro", "table1-report", env={**os.environ, "MNIST_MIRROR": str(tiny_mirror)})
    ran = {line.split("'")[1] for line in result.stdout.splitlines() if line.startswith("Running stage")}
    assert {
        "train-table1@rot-paper-cnn-tiny-e2",
        "train-table1-extra@rot-paper-st-affine-tiny-e2",
        "evaluate-table1@rot-paper-st-affine-tiny-e2",
        "train-budget@rot-paper-cnn-tiny-e1",
        "evaluate-budget@rot-paper-st-affine-tiny-e1",
        "table1-report",
    } <= ran
    models = project / "models" / "table1" / "tiny-e2" / "rot"
    assert sorted(p.name for p in (models / "paper-cnn").iterdir()) == ["s0.pt", "s1.pt"]
    assert (project / "models" / "table1-extra" / "tiny-e2" / "rot" / "paper-st-affine" / "s2.pt").is_file()
    report = (project / "reports" / "table1.md").read_text()
    headline = report.split("**Headline.** ", 1)[1].split("\n\n", 1)[0].replace("\n", " ")
    assert headline.startswith("Our CNN's mean test error, rounded to 0.1 as the paper's are, is at or below")
    assert "paper's CNN error on 0 of 1 datasets (none); our 95% interval lies wholly below" in headline
    assert "No recipe search was run for it" in report and "still falling?" in report
    assert "## Training error against test error" in report and "| paper-st-affine | " in report
    assert "| paper-st-affine | 3 |" in report and "| *paper: ST-CNN affine* | — | 0.7 |" in report
    assert "| rot | 1 | " in report and "| rot | 2 | " in report  # the budget ranking at 1 and 2 epochs
    assert "| rot | paper-cnn − paper-st-affine | 2 |" in report  # paired on the 2 seeds both have
    headline = json.loads((project / "metrics" / "table1.json").read_text())
    assert set(headline["rot"]) == set(variants)
    for figure in ("error-rot.png", "budget.png"):
        assert (project / "plots" / "table1" / figure).read_bytes().startswith(PNG)
    assert (
        dvc(project, "status", "table1-report").stdout.strip().startswith("Data and pipelines are up to date")
    )
