"""Metrics from predictions, statistics across runs, atomic writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stn.analysis.evaluate import (
    confusion,
    predict,
    predictions_table,
    rotation_curve,
    save_predictions,
    summarize,
)
from stn.analysis.stats import (
    load_runs,
    mcnemar_exact,
    paired_comparisons,
    summarize_variants,
    summary_json,
    t_interval,
)
from stn.atomic import write_json, write_text
from stn.datasets.normalization import Normalization
from stn.errors import StnError
from stn.models.builder import InputShape, build_model
from stn.run_paths import RunPaths
from stn.variant import VariantSpec

TUTORIAL = Normalization(0.1307, 0.3081)


def _table(actual: list[int], predicted: list[int]) -> pd.DataFrame:
    log_probs = np.full((len(actual), 10), np.log(0.05), dtype=np.float32)
    log_probs[np.arange(len(actual)), predicted] = np.log(0.55)
    return predictions_table(log_probs, np.array(actual))


def test_summarize_known_predictions() -> None:
    table = _table([0, 0, 1, 1, 2], [0, 1, 1, 1, 0])
    metrics = summarize(table)
    assert metrics["accuracy"] == pytest.approx(0.6) and metrics["n_correct"] == 3 and metrics["n"] == 5
    assert metrics["error_rate"] == pytest.approx(0.4)
    assert metrics["per_class_accuracy"]["0"] == 0.5 and metrics["per_class_accuracy"]["1"] == 1.0
    assert metrics["per_class_accuracy"]["2"] == 0.0 and metrics["per_class_accuracy"]["9"] == 0.0
    # mean NLL: right answers cost -log 0.55, wrong ones -log 0.05
    assert metrics["loss"] == pytest.approx((3 * -np.log(0.55) + 2 * -np.log(0.05)) / 5, rel=1e-6)
    low, high = metrics["accuracy_ci95"]
    assert low < 0.6 < high
    matrix = confusion(table)
    assert matrix.shape == (10, 10) and matrix.sum() == 5 and matrix[0, 1] == 1 and matrix[2, 0] == 1
    np.testing.assert_allclose(table["confidence"], 0.55, rtol=1e-6)  # the top class's probability


def test_predict_matches_model_output() -> None:
    torch.manual_seed(0)
    model = build_model(VariantSpec())
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    log_probs = predict(model, images, TUTORIAL, batch_size=3)
    assert log_probs.shape == (7, 10) and not model.training
    np.testing.assert_allclose(np.exp(log_probs).sum(1), 1, rtol=1e-5)
    with torch.inference_mode():
        expected = model(TUTORIAL(images)).numpy()
    np.testing.assert_allclose(log_probs, expected, rtol=1e-5, atol=1e-6)  # batching changes nothing


def test_predict_uses_the_given_normalization() -> None:
    torch.manual_seed(0)
    model = build_model(VariantSpec(stn=False))
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    other = Normalization(0.5, 0.2)
    with torch.inference_mode():
        expected = model.eval()(other(images)).numpy()
    np.testing.assert_allclose(predict(model, images, other), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(predict(model, images, TUTORIAL), expected)


def test_predict_on_a_larger_input() -> None:
    model = build_model(VariantSpec(output_size=(28, 28)), InputShape(size=(42, 42)))
    images = np.zeros((3, 42, 42), dtype=np.uint8)
    assert predict(model, images, TUTORIAL).shape == (3, 10)


def test_rotation_curve_rows() -> None:
    torch.manual_seed(0)
    model = build_model(VariantSpec(stn=False))
    images = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.arange(5)
    curve = rotation_curve(model, images, labels, TUTORIAL, step=90)
    assert curve["angle"].tolist() == [0, 90, 180]
    upright = (predict(model, images, TUTORIAL).argmax(1) == labels).mean()
    assert curve["accuracy"].iloc[0] == pytest.approx(upright)


def test_t_interval_and_mcnemar() -> None:
    low, high = t_interval(np.array([0.99, 0.991, 0.992]))
    assert low < 0.991 < high and high - low == pytest.approx(2 * 4.302653 * 0.001 / np.sqrt(3), rel=1e-5)
    assert np.isnan(t_interval(np.array([0.5]))[0])
    a = np.array([True] * 10 + [False] * 0 + [True] * 5)
    b = np.array([False] * 10 + [True] * 5)
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (10, 0) and p == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(a, a)[2] == 1.0


def _paths(root: Path, dataset: str, variants: list[str], seeds: list[int]) -> list[RunPaths]:
    return [RunPaths("study", dataset, v, s, root) for v in variants for s in seeds]


def _fake_run(root: Path, variant: str, seed: int, correct: np.ndarray, dataset: str = "mnist") -> None:
    (paths,) = _paths(root, dataset, [variant], [seed])
    actual = np.zeros(len(correct), dtype=int)
    predicted = np.where(correct, 0, 1)
    table = pd.DataFrame({"actual": actual, "predicted": predicted, "nll": np.where(correct, 0.1, 2.0)})
    save_predictions(table, paths.predictions)
    write_json(paths.metrics, summarize(table))


def test_paired_comparison_pairs_the_seeds_both_ran(tmp_path: Path) -> None:
    """Extra seeds for some variants: each comparison uses the seeds it shares with the baseline."""
    rng = np.random.default_rng(2)
    for seed in range(5):
        base = rng.random(500) < 0.9
        if seed < 4:
            _fake_run(tmp_path, "base", seed, base)
        _fake_run(tmp_path, "five", seed, base | (rng.random(500) < 0.3))
        if seed < 3:
            _fake_run(tmp_path, "three", seed, base & (rng.random(500) < 0.95))
    runs = pd.concat(
        [
            load_runs(_paths(tmp_path, "mnist", ["base"], [0, 1, 2, 3])),
            load_runs(_paths(tmp_path, "mnist", ["five"], [0, 1, 2, 3, 4])),  # more seeds than the baseline
            load_runs(_paths(tmp_path, "mnist", ["three"], [0, 1, 2])),  # fewer
        ]
    )
    table = paired_comparisons(runs, "base", tmp_path).set_index("variant")
    assert table.loc["five", "seeds_paired"] == 4 and len(table.loc["five", "mcnemar_p_per_seed"]) == 4
    assert table.loc["three", "seeds_paired"] == 3 and len(table.loc["three", "mcnemar_p_per_seed"]) == 3
    by_seed = runs.pivot(index="seed", columns="variant", values="accuracy")
    assert table.loc["three", "diff_mean"] == pytest.approx((by_seed["three"] - by_seed["base"])[:3].mean())
    assert table.loc["five", "diff_mean"] == pytest.approx((by_seed["five"] - by_seed["base"])[:4].mean())
    assert table.loc["five", "diff_mean"] > 0 > table.loc["three", "diff_mean"]
    _fake_run(tmp_path, "elsewhere", 7, np.ones(500, dtype=bool))
    alone = pd.concat([runs, load_runs(_paths(tmp_path, "mnist", ["elsewhere"], [7]))])
    with pytest.raises(StnError, match="mnist: elsewhere and base share no seed"):
        paired_comparisons(alone, "base", tmp_path)


def test_paired_comparison_over_seeds(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for seed in (0, 1, 2):
        base = rng.random(1000) < 0.9
        better = base | (rng.random(1000) < 0.5)  # fixes about half of the baseline's errors
        _fake_run(tmp_path, "base", seed, base)
        _fake_run(tmp_path, "better", seed, better)
    runs = load_runs(_paths(tmp_path, "mnist", ["base", "better"], [0, 1, 2]))
    assert (runs["dataset"] == "mnist").all()
    summary = summarize_variants(runs)
    assert list(summary.index) == ["base", "better"] and (summary["n_seeds"] == 3).all()
    assert summary.loc["better", "accuracy_mean"] > summary.loc["base", "accuracy_mean"]
    comparison = paired_comparisons(runs, "base", tmp_path).iloc[0]
    assert comparison["variant"] == "better" and comparison["diff_ci95_low"] > 0
    assert comparison["dataset"] == "mnist"
    assert comparison["only_baseline_right"] == 0 and comparison["only_variant_right"] > 100
    assert all(p < 1e-10 for p in comparison["mcnemar_p_per_seed"])


def test_summary_json_has_no_nan(tmp_path: Path) -> None:
    _fake_run(tmp_path, "solo", 0, np.array([True, False, True]))
    summary = summary_json(summarize_variants(load_runs(_paths(tmp_path, "mnist", ["solo"], [0]))))
    assert summary["solo"]["accuracy_std"] is None and summary["solo"]["n_seeds"] == 1
    json.dumps(summary, allow_nan=False)


def test_missing_run_is_named(tmp_path: Path) -> None:
    missing = "study/rot/stn-conv/s4.json: missing; run dvc repro to evaluate rot/stn-conv-s4"
    with pytest.raises(StnError, match=missing):
        load_runs(_paths(tmp_path, "rot", ["stn-conv"], [4]))


def test_runs_trained_on_different_devices_are_not_compared(tmp_path: Path) -> None:
    _fake_run(tmp_path, "cnn", 0, np.array([True, True]))
    _fake_run(tmp_path, "cnn", 1, np.array([True, False]))
    assert load_runs(_paths(tmp_path, "mnist", ["cnn"], [0, 1]))["trained_on"].tolist() == ["cpu", "cpu"]
    metrics = _paths(tmp_path, "mnist", ["cnn"], [1])[0].metrics
    write_json(metrics, json.loads(metrics.read_text()) | {"trained_on": "cuda"})
    mixed = r"different devices .*cpu: e.g. mnist/cnn-s0, cuda: e.g. mnist/cnn-s1"
    with pytest.raises(StnError, match=mixed):
        load_runs(_paths(tmp_path, "mnist", ["cnn"], [0, 1]))


def test_runs_of_other_datasets_are_kept_apart(tmp_path: Path) -> None:
    _fake_run(tmp_path, "cnn", 0, np.array([True, True, True, True]), dataset="mnist")
    _fake_run(tmp_path, "cnn", 0, np.array([True, False, False, False]), dataset="rot")
    assert load_runs(_paths(tmp_path, "mnist", ["cnn"], [0]))["accuracy"].tolist() == [1.0]
    assert load_runs(_paths(tmp_path, "rot", ["cnn"], [0]))["accuracy"].tolist() == [0.25]


def test_atomic_write_respects_umask(tmp_path: Path) -> None:
    write_text(tmp_path / "r.txt", "x")
    mode = (tmp_path / "r.txt").stat().st_mode & 0o777
    assert mode & 0o044 or os.umask(os.umask(0)) & 0o044  # readable by others unless the umask forbids


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "m.json"
    write_json(target, {"accuracy": 0.9})

    def crash(self, data, *args, **kwargs):
        Path(self).open("w").write(data[:5])  # half of the new content, then the crash
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", crash)
    with pytest.raises(OSError, match="disk full"):
        write_text(target, json.dumps({"accuracy": 0.1}))
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"accuracy": 0.9}
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind


@pytest.mark.parametrize("name", ["results", "benchmark"])
def test_readme_results_are_the_generated_ones(name: str) -> None:
    """The README's results tables are copied verbatim from the committed reports."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import BLOCKS, markers

    path, extract = BLOCKS[name]
    report = ROOT / path
    readme = (ROOT / "README.md").read_text()
    if not report.is_file():
        pytest.skip("no study results committed yet")
    begin, end = markers(name)
    inside = readme[readme.index(begin) + len(begin) : readme.index(end)]
    assert inside.strip() == extract(report.read_text()).strip()
