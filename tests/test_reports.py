"""The report pieces of the upright study: the original study's claims, validation curves,
per-class scores and cost, each on a small case whose answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT
from test_evaluate import _fake_run

from stn.analysis.classification import per_class_scores_table
from stn.analysis.cost import cost_frame, cost_table, input_shape_of
from stn.analysis.stats import (
    ORIGINAL_RUNS,
    claim_comparisons,
    claim_verdicts,
    load_histories,
    load_runs,
    missing_claim_comparisons,
    one_device,
    original_side_by_side,
    per_class_scores,
)
from stn.analysis.validation import checkpoints, returns_table, validation_figure
from stn.errors import StnError
from stn.models.builder import InputShape
from stn.params.study import load_params
from stn.run_paths import RunPaths
from stn.training.loop import EpochStats, save_history
from stn.variant import VariantSpec

SEEDS = [0, 1, 2]


def _study(root: Path, accuracy: dict[str, list[float]], n: int = 10000) -> pd.DataFrame:
    """Fake runs of the upright study with the given accuracy per seed (errors at random images)."""
    rng = np.random.default_rng(0)
    for variant, per_seed in accuracy.items():
        for seed, acc in zip(SEEDS, per_seed, strict=True):
            correct = np.ones(n, dtype=bool)
            correct[rng.choice(n, round(n * (1 - acc)), replace=False)] = False
            _fake_run(root, variant, seed, correct)
    return load_runs([RunPaths("study", "mnist", v, seed, root) for v in accuracy for seed in SEEDS])


def test_original_runs_sit_beside_the_variants_that_reproduce_them(tmp_path: Path) -> None:
    runs = _study(tmp_path, {"stn-conv": [0.99, 0.9921, 0.993], "stn-coordconv-cls": [0.995, 0.996, 0.997]})
    table = original_side_by_side(runs).splitlines()
    assert len(table) == 4  # header, rule, Conv, CoordConv: the Leaky ReLU variant did not run
    conv, coordconv = table[2], table[3]
    assert conv.startswith("| Conv | 99.21% / 0.0296 | stn-conv |")
    assert conv.endswith("| above 1, equal to 1, below 1 of 3 seeds |")  # 9921 of 10000 images is a tie
    assert coordconv.startswith("| CoordConv | 99.08% / 0.0312 | stn-coordconv-cls |")
    assert "below all 3 seeds" in coordconv and "99.60 ± 0.10; 99.50–99.70" in coordconv
    assert ORIGINAL_RUNS["Leaky ReLU"].variant == "stn-coordconv-linear"


def test_a_claim_fails_when_the_variant_is_significantly_better(tmp_path: Path) -> None:
    runs = _study(
        tmp_path,
        {
            "stn-conv": [0.900, 0.905, 0.910],
            "stn-coordconv-cls": [0.950, 0.956, 0.960],  # much better: "does not improve" fails
            "stn-coordconv-linear": [0.901, 0.903, 0.912],  # the same: "does not improve" holds
        },
    )
    claims = claim_comparisons(runs, tmp_path)
    assert list(claims["variant"]) == ["stn-coordconv-cls", "stn-coordconv-linear"]
    assert list(claims["baseline"]) == ["stn-conv", "stn-conv"]
    # Holm over the two comparisons: the smaller p doubled, the larger at least that.
    raw = claims["paired_t_p"].to_numpy()
    assert claims["paired_t_p_holm"].iloc[0] == pytest.approx(min(1, 2 * raw.min()))
    assert missing_claim_comparisons(runs) == [
        "`stn-coordconv` − `stn-conv`",
        "`stn-coordconv-linear` − `stn-coordconv`",
        "`stn-coordconv-leakyrelu` − `stn-coordconv`",
    ]
    text = claim_verdicts(claims).splitlines()
    assert text[0].startswith("- *CoordConv does not improve on Conv* — does not hold: `stn-coordconv-cls`")
    assert "+5.03 pp" in text[0]
    assert text[1].startswith("- *Leaky ReLU does not improve the STN* — holds")


def test_claims_without_their_variants_say_so(tmp_path: Path) -> None:
    runs = _study(tmp_path, {"cnn": [0.9, 0.9, 0.9]})
    assert claim_comparisons(runs, tmp_path).empty
    assert "not in this study" in claim_verdicts(pd.DataFrame())


def _histories() -> pd.DataFrame:
    rows = []
    for seed, late_gain in zip(SEEDS, [0.001, 0.002, 0.003], strict=True):
        for epoch in range(1, 11):
            rows.append({"variant": "a", "seed": seed, "epoch": epoch, "val_accuracy": 0.9 + 0.005 * epoch})
            flat = 0.95 + (late_gain if epoch == 10 else 0.0)
            rows.append({"variant": "b", "seed": seed, "epoch": epoch, "val_accuracy": flat})
    return pd.DataFrame(rows)


def test_returns_table_by_hand() -> None:
    assert checkpoints(50) == [12, 25, 38, 50] and checkpoints(1) == [1]
    table = returns_table(_histories(), ["variant"], [5, 8, 10]).splitlines()
    assert table[0] == "| variant | epoch 5 | epoch 8 | epoch 10 | gain 8→10 (pp) |"
    assert table[2] == "| a | 92.50 | 94.00 | 95.00 | +1.00 ± 0.00 |"
    assert table[3] == "| b | 95.00 | 95.00 | 95.20 | +0.20 ± 0.10 |"
    assert returns_table(_histories(), ["variant"], [10]).splitlines()[2] == "| a | 95.00 |"
    assert "No validation split" in returns_table(pd.DataFrame({"epoch": [1]}), ["variant"], [1])
    validation_figure(_histories(), "test")


def test_per_class_scores_of_every_run(tmp_path: Path) -> None:
    # Seed 0: every image of class 0 right; seed 1: class 0 predicted as 1 half of the time.
    for seed, predicted in [(0, [0, 0, 1, 1]), (1, [0, 1, 1, 1])]:
        paths = RunPaths("upright", "mnist", "v", seed, tmp_path)
        table = pd.DataFrame({"actual": [0, 0, 1, 1], "predicted": predicted, "nll": 0.1})
        paths.predictions.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(paths.predictions, index=False)
    scores = per_class_scores([RunPaths("upright", "mnist", "v", seed, tmp_path) for seed in (0, 1)])
    assert len(scores) == 2 * 10 and list(scores.columns[:3]) == ["variant", "seed", "class"]
    one = scores[(scores["seed"] == 1)].set_index("class")
    assert one.loc[0, "recall"] == 0.5 and one.loc[1, "precision"] == pytest.approx(2 / 3)
    table = per_class_scores_table(scores).splitlines()
    assert table[2].startswith("| v | precision | 100.0 | 83.3 | 0.0 |")  # (1 + 1) / 2, (1 + 2/3) / 2
    assert table[3].startswith("| v | recall | 75.0 | 100.0 | 0.0 |")


def test_cost_counts_flops_of_the_architecture() -> None:
    """The classifier's FLOPs by hand (a multiply-add is 2): conv1, conv2, fc1, fc2 forward;
    training adds the weight gradients (as many) and the input gradients of all but conv1."""
    runs = pd.DataFrame(
        {
            "dataset": ["tiny", "tiny", "tiny", "tiny", "big"],
            "variant": ["cnn", "cnn", "stn-conv", "stn-coordconv", "cnn"],
            "seed": [0, 1, 0, 0, 0],
            "parameters": [21840, 21840, 27360, 28644, 41585],
        }
    )
    specs = {
        "cnn": VariantSpec(stn=False),
        "stn-conv": VariantSpec(),
        "stn-coordconv": VariantSpec(layer="coordconv"),
    }
    state = torch.get_rng_state()
    shapes = {"tiny": InputShape(size=(28, 28)), "big": InputShape(size=(36, 36), classes=5)}
    frame = cost_frame(runs, specs, shapes)
    assert torch.equal(torch.get_rng_state(), state)  # building the models drew no random numbers
    assert list(frame.index) == [
        ("tiny", "cnn"),
        ("tiny", "stn-conv"),
        ("tiny", "stn-coordconv"),
        ("big", "cnn"),
    ]
    # 28x28: 2 * (10*25*24*24 + 20*250*8*8 + 320*50 + 50*10) forward; backward adds the same
    # again (weights) plus 2 * (20*250*8*8 + 320*50 + 50*10) (inputs).
    assert frame.loc[("tiny", "cnn"), "inference_flops"] == 961_000
    assert frame.loc[("tiny", "cnn"), "train_flops"] == 2 * 961_000 + 673_000
    # 36x36 with 5 classes: 10*25*32*32, 20*250*12*12, 720*50, 50*5.
    big = 2 * (256_000 + 720_000 + 36_000 + 250)
    assert frame.loc[("big", "cnn"), "inference_flops"] == big
    assert frame.loc[("big", "cnn"), "train_flops"] == 2 * big + 2 * (720_000 + 36_000 + 250)
    stn = frame.loc[("tiny", "stn-conv")]
    assert stn["inference_flops"] > 961_000 and stn["train_flops"] > 2 * stn["inference_flops"]
    # CoordConv's coordinate channels are convolved once per batch: no cost per image.
    assert frame.loc[("tiny", "stn-coordconv"), "inference_flops"] == stn["inference_flops"]
    table = cost_table(frame).splitlines()
    assert "training MFLOPs/image (forward + backward)" in table[0] and "inference MFLOPs/image" in table[0]
    assert table[2] == "| tiny | cnn | 21,840 | 2.60 | 0.96 |"
    with pytest.raises(KeyError, match="nowhere"):
        cost_frame(runs.assign(dataset="nowhere"), specs, shapes)


def test_input_shape_comes_from_the_dataset_params() -> None:
    """The image size a report counts FLOPs for is the one prepare makes: RTS's 42x42 canvas."""
    params = load_params(ROOT / "params.yaml")
    assert input_shape_of(params.dataset("rts")) == InputShape(size=(42, 42), classes=10)
    assert (
        input_shape_of(params.dataset("mnist")).size == input_shape_of(params.dataset("rot")).size == (28, 28)
    )


def test_readme_blocks_take_their_lines_from_their_own_sections() -> None:
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "scripts"))
    from update_readme import benchmark_block, results_block

    upright = """# Results

Data: MNIST from somewhere — a note.

| variant | acc |
| --- | ---: |
| cnn | 99.0 |

## The original study's conclusions

- *CoordConv does not improve on Conv* — holds; details.

## Why these metrics

- *Not a verdict* — an italic bullet elsewhere.
"""
    block = results_block(upright)
    assert block.startswith("Data: MNIST from somewhere — a note.\n\n| variant | acc |")
    assert "- *CoordConv does not improve on Conv* — holds; details." in block
    assert "Not a verdict" not in block
    distorted = """# Distorted

## Headline

`x` did best. It matches the paper on rot.

## Test error (%)

| variant | rot |
| --- | ---: |
| *paper: CNN* | 1.2 |

## Does the STN beat the CNN, and plain augmentation?

- **rot**: `stn-conv` against `cnn`: lower error.

## New ideas against the conventional STN

- **`stn-ic`** (iterations: 2): an idea, not a verdict.
"""
    block = benchmark_block(distorted)
    assert block.startswith("**`x` did best. It matches the paper on rot.**\n\n| variant | rot |")
    assert block.endswith("- **rot**: `stn-conv` against `cnn`: lower error.\n")


def test_load_histories_stacks_every_run_and_names_a_missing_one(tmp_path: Path) -> None:
    for seed in (0, 1):
        path = RunPaths("distorted", "rot", "stn-conv", seed, tmp_path).history
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("epoch,loss,accuracy\n1,0.5,0.8\n2,0.4,0.9\n")
    runs = [RunPaths("distorted", "rot", "stn-conv", seed, tmp_path) for seed in (0, 1, 2)]
    histories = load_histories(runs[:2])
    assert len(histories) == 4 and list(histories["seed"]) == [0, 0, 1, 1]
    assert set(histories["dataset"]) == {"rot"} and set(histories["variant"]) == {"stn-conv"}
    missing = r"plots/train/distorted/rot/stn-conv/s2.csv: missing; run dvc repro to train rot/stn-conv-s2"
    with pytest.raises(StnError, match=missing):
        load_histories(runs)


def test_curves_trained_on_different_devices_are_not_compared(tmp_path: Path) -> None:
    runs = [RunPaths("search", "rot", "paper-cnn", seed, tmp_path) for seed in (0, 1)]
    history = [EpochStats(epoch=1, loss=0.5, accuracy=0.8, seconds=3.0)]
    save_history(history, runs[0].history)
    save_history(history, runs[1].history, trained_on="cuda")
    assert "trained_on" not in runs[0].history.read_text()  # CPU curves keep their bytes
    assert list(load_histories(runs[1:])["trained_on"]) == ["cuda"]
    with pytest.raises(
        StnError, match=r"different devices .*cpu: e.g. rot/paper-cnn-s0, cuda: e.g. rot/paper-cnn-s1"
    ):
        load_histories(runs)
    one_device(load_histories(runs[:1]))  # one device: fine
    with pytest.raises(StnError, match="different devices"):
        one_device(load_histories(runs[:1]), load_histories(runs[1:]))  # across frames too
