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
    paper_share,
    ranking_changes,
    ranking_table,
    reached,
    short_verdict,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _summary(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "variant": v, "accuracy_mean": 1 - e / 100} for d, v, e in rows])


def test_reached_compares_each_paper_row_with_the_paper() -> None:
    summary = _summary([("rot", "paper-cnn", 1.1), ("rts", "paper-cnn", 0.9), ("rot", "paper-st-loclr", 0.1)])
    hits = reached(summary, {"rot": "rot", "rts": "rts"})
    assert hits.to_dict("records") == [
        {"model": "CNN", "dataset": "rot", "ours": pytest.approx(1.1), "paper": 1.2, "reached": True},
        {"model": "CNN", "dataset": "rts", "ours": pytest.approx(0.9), "paper": 0.8, "reached": False},
    ]  # paper-st-loclr is no row of the paper's table


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


def test_table1_and_the_budget_curve_run_as_a_pipeline(tiny_mirror: Path, tmp_path: Path) -> None:
    params = tiny_params()
    adamw = {"batch_size": 64, "optimizer": "adamw", "momentum": 0.0, "lr": 0.003, "schedule": "onecycle"}
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
    assert "**Headline.** Our CNN reaches the paper's CNN error on 0 of 1 datasets (none)" in report
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
