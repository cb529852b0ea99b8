"""Statistics for the evaluation study, each checked on a small case worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from stn.analysis.calibration import (
    confidence_and_correct,
    ece_from_predictions,
    expected_calibration_error,
    reliability_bins,
    reliability_figure,
)
from stn.analysis.classification import (
    macro_f1,
    per_class_accuracy_row,
    per_class_accuracy_table,
    per_class_report,
)
from stn.analysis.significance import (
    format_p,
    holm,
    mcnemar_exact,
    minimum_detectable_difference,
    paired_t_interval,
    paired_t_power,
    required_pairs,
)

# --- calibration -------------------------------------------------------------------------

CONF = np.array([0.95, 0.9, 0.85, 0.6, 0.55, 0.3])
CORRECT = np.array([1, 1, 0, 1, 0, 0])


def test_ece_by_hand_5_bins():
    # 5 bins: [0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1]
    # (.8,1]:  .95 .9 .85 -> mean conf 0.9,   accuracy 2/3, |gap| = 0.2333..., weight 3/6
    # (.4,.6]: .6 .55     -> mean conf 0.575, accuracy 1/2, |gap| = 0.075,     weight 2/6
    # (.2,.4]: .3         -> mean conf 0.3,   accuracy 0,   |gap| = 0.3,       weight 1/6
    # ECE = (3 * 0.7/3 + 2 * 0.075 + 0.3) / 6 = (0.7 + 0.15 + 0.3) / 6 = 1.15 / 6 = 0.191666...
    assert expected_calibration_error(CONF, CORRECT, n_bins=5) == pytest.approx(1.15 / 6)
    bins = reliability_bins(CONF, CORRECT, n_bins=5)
    assert list(bins.columns) == ["bin_low", "bin_high", "count", "mean_confidence", "accuracy"]
    assert bins["count"].tolist() == [0, 1, 2, 0, 3]  # 0.6 is on an edge: in (.4, .6]
    assert bins["mean_confidence"].tolist()[1:3] == pytest.approx([0.3, 0.575])
    assert bins["accuracy"].tolist()[4] == pytest.approx(2 / 3)
    assert bins["accuracy"].isna().tolist() == [True, False, False, True, False]


def test_ece_by_hand_15_bins():
    # 15 bins of width 1/15 (edges k/15: .8 = 12/15, .8667 = 13/15, .9333 = 14/15, .6 = 9/15):
    # (14/15, 1]:      .95      -> conf .95,  acc 1,   |gap| .05,  n 1
    # (13/15, 14/15]:  .9       -> conf .9,   acc 1,   |gap| .1,   n 1
    # (12/15, 13/15]:  .85      -> conf .85,  acc 0,   |gap| .85,  n 1
    # (8/15, 9/15]:    .6 .55   -> conf .575, acc 1/2, |gap| .075, n 2
    # (4/15, 5/15]:    .3       -> conf .3,   acc 0,   |gap| .3,   n 1
    # ECE = (.05 + .1 + .85 + 2 * .075 + .3) / 6 = 1.45 / 6 = 0.241666...
    assert expected_calibration_error(CONF, CORRECT) == pytest.approx(1.45 / 6)


def test_ece_perfect_and_worst():
    # 0.75 with 3 of 4 right and 0.5 with 1 of 2 right: every bin's accuracy equals its confidence
    conf = np.array([0.75, 0.75, 0.75, 0.75, 0.5, 0.5])
    assert expected_calibration_error(conf, np.array([1, 1, 1, 0, 1, 0])) == pytest.approx(0.0)
    # always wrong: every bin has accuracy 0, so ECE = sum (n_b/N) * conf_b = mean confidence
    assert expected_calibration_error(CONF, np.zeros(6)) == pytest.approx(CONF.mean())


def test_bin_edges_zero_and_one():
    bins = reliability_bins(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1]), n_bins=15)
    assert bins["count"].iloc[0] == 1 and bins["count"].iloc[-1] == 2 and bins["count"].sum() == 3
    assert expected_calibration_error(np.array([0.0, 1.0, 1.0]), np.array([0, 1, 1])) == 0.0
    with pytest.raises(ValueError):
        reliability_bins(np.array([1.01]), np.array([1]))


def test_confidence_and_correct_and_predictions_table():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    conf, correct = confidence_and_correct(np.log(probs), np.array([0, 1]))
    assert conf == pytest.approx([0.7, 0.6]) and correct.tolist() == [True, False]
    conf2, _ = confidence_and_correct(np.log(probs) + 5.0, np.array([0, 1]))  # logits: same softmax
    assert conf2 == pytest.approx([0.7, 0.6])
    df = pd.DataFrame(
        {"actual": [1, 1, 0, 1, 0, 2], "predicted": [1, 1, 1, 1, 1, 0], "nll": 0.0, "confidence": CONF}
    )
    assert ece_from_predictions(df, n_bins=5) == pytest.approx(1.15 / 6)
    with pytest.raises(ValueError, match="confidence"):
        ece_from_predictions(df.drop(columns="confidence"))


def test_reliability_figure_smoke():
    import matplotlib.pyplot as plt

    bins = {"a": reliability_bins(CONF, CORRECT), "b": reliability_bins(np.full(4, 0.99), np.ones(4))}
    fig = reliability_figure(bins, "toy")
    assert len(fig.axes) == 2
    plt.close(fig)


# --- classification ----------------------------------------------------------------------

# actual:    0 0 0 0 1 1 2 2 2 2
# predicted: 0 0 0 1 1 1 2 2 0 0
ACTUAL = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
PREDICTED = np.array([0, 0, 0, 1, 1, 1, 2, 2, 0, 0])


def test_per_class_report_by_hand():
    # class 0: predicted 0 five times, 3 right -> P 3/5; 3 of 4 found -> R 3/4; F1 = 2*.6*.75/1.35 = 2/3
    # class 1: predicted 1 three times, 2 right -> P 2/3; 2 of 2 found -> R 1; F1 = (4/3)/(5/3) = 4/5
    # class 2: predicted 2 twice, both right -> P 1; 2 of 4 found -> R 1/2; F1 = 1/1.5 = 2/3
    report = per_class_report(ACTUAL, PREDICTED, labels=range(3))
    assert report.index.name == "class" and report.index.tolist() == [0, 1, 2]
    assert report["precision"].tolist() == pytest.approx([3 / 5, 2 / 3, 1])
    assert report["recall"].tolist() == pytest.approx([3 / 4, 1, 1 / 2])
    assert report["f1"].tolist() == pytest.approx([2 / 3, 4 / 5, 2 / 3])
    assert report["support"].tolist() == [4, 2, 4]
    # macro F1 = (2/3 + 4/5 + 2/3) / 3 = (32/15) / 3 = 32/45
    assert macro_f1(ACTUAL, PREDICTED, labels=range(3)) == pytest.approx(32 / 45)
    # an absent class counts as F1 0 in the macro average: (32/15) / 4 = 8/15
    assert per_class_report(ACTUAL, PREDICTED, labels=range(4)).loc[3].tolist() == [0, 0, 0, 0]
    assert macro_f1(ACTUAL, PREDICTED, labels=range(4)) == pytest.approx(8 / 15)


def test_per_class_accuracy_row_rounding():
    # 0.9876 -> 98.76 -> "98.8%" (rounded, not truncated to 98.7)
    # 0.9805 -> "98.1%": half up on the printed decimal; f"{0.9805 * 100:.1f}" would give "98.0"
    # 0.98749 -> "98.7%"; 1.0 -> "100.0%"
    row = per_class_accuracy_row(pd.Series({1: 0.9805, 0: 0.9876, 2: 0.98749, 3: 1.0}, name="stn-conv"))
    assert row == "| stn-conv | 98.8% | 98.1% | 98.7% | 100.0% |"
    assert per_class_accuracy_row({0: 0.5}, name="x") == "| x | 50.0% |"
    with pytest.raises(ValueError):
        per_class_accuracy_row({0: 99.1}, name="percent, not fraction")


def test_per_class_accuracy_table():
    rows = {"cnn": pd.Series(np.full(10, 0.99)), "stn": pd.Series(np.linspace(0.981, 0.999, 10))}
    lines = per_class_accuracy_table(rows).splitlines()
    assert lines[0] == "| variant | 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 |"
    assert lines[1] == "|" + "|".join([" :---: "] * 11) + "|"
    assert lines[2] == "| cnn |" + " 99.0% |" * 10
    assert lines[3].startswith("| stn | 98.1% | 98.3% |") and lines[3].endswith("| 99.9% |")


# --- significance ------------------------------------------------------------------------


def test_holm_by_hand():
    # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> running max .06
    # back in input order [.01, .04, .03, .005] -> [.03, .06, .06, .02]
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # monotone and capped: .02*3 = .06, .021*2 = .042 -> .06 (running max), .9*1 -> .9; .5*3 > 1 capped
    assert holm([0.021, 0.02, 0.9]) == pytest.approx([0.06, 0.06, 0.9])
    assert holm([0.5, 0.6, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    # NaN passed through and not counted: m = 2, so .01*2 = .02, .04*1 -> .04
    out = holm([0.04, np.nan, 0.01])
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.04, 0.02])
    assert holm([]).size == 0


def test_paired_t_interval():
    # diffs 1, 2, 3: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 4.302653
    mean, low, high = paired_t_interval([1.0, 2.0, 3.0])
    half = 4.302652729749464 / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


def test_mcnemar_by_hand():
    # 10 images only a right, 2 only b right, 5 both right, 3 both wrong
    a = np.array([1] * 10 + [0] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 5 + [0] * 3, dtype=bool)
    # p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 158/4096 = 0.03857421875
    assert mcnemar_exact(a, b) == (10, 2, pytest.approx(0.03857421875))
    assert mcnemar_exact(b, a) == (2, 10, pytest.approx(0.03857421875))
    assert mcnemar_exact(a, a) == (0, 0, 1.0)


def test_minimum_detectable_difference_by_simulation():
    # n = 5 pairs, sd 1: noncentral t gives delta = 1.682 (the normal approximation
    # (1.96 + 0.84) / sqrt(5) = 1.25 is far too optimistic with 4 degrees of freedom)
    delta = minimum_detectable_difference(1.0, 5)
    assert delta == pytest.approx(1.682, abs=1e-3)
    assert minimum_detectable_difference(2.0, 5) == pytest.approx(2 * delta)  # scales with sd
    # simulate 20000 experiments of 5 paired differences ~ N(delta, 1), two-sided t-test at 0.05
    rng = np.random.default_rng(0)
    crit = stats.t.ppf(0.975, 4)

    def rejection_rate(true_mean: float) -> float:
        d = rng.normal(true_mean, 1.0, size=(20000, 5))
        t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(5))
        return float(np.mean(np.abs(t) > crit))

    assert rejection_rate(delta) == pytest.approx(0.8, abs=0.02)
    assert rejection_rate(0.0) == pytest.approx(0.05, abs=0.01)
    # consistency: 5 pairs just suffice at delta, not at a hair below it
    assert required_pairs(1.0, delta * (1 + 1e-6)) == 5
    assert required_pairs(1.0, delta * (1 - 1e-6)) == 6
    assert required_pairs(1.0, 0.5) >= required_pairs(1.0, 1.0) > 5


def test_format_p_bounds_an_underflow():
    assert format_p(0.0) == "<1e-300" and format_p(1e-320) == "<1e-300"
    assert format_p(0.012345) == "0.0123" and format_p(0.012345, 2) == "0.012"
    assert format_p(float("nan")) == "n/a"
    assert mcnemar_exact(np.ones(3000, bool), np.zeros(3000, bool))[2] == 0.0  # why the bound exists


def test_minimum_detectable_difference_with_two_pairs():
    """One degree of freedom: scipy's noncentral t returns NaN in the far tail; the power still
    comes out, and simulation agrees with it."""
    delta = minimum_detectable_difference(1.0, 2)
    assert math.isfinite(delta) and paired_t_power(delta, 1.0, 2) == pytest.approx(0.8)
    assert paired_t_power(-delta, 1.0, 2) == pytest.approx(0.8)  # two-sided: symmetric
    d = np.random.default_rng(1).normal(delta, 1.0, size=(20000, 2))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(2))
    assert float(np.mean(np.abs(t) > stats.t.ppf(0.975, 1))) == pytest.approx(0.8, abs=0.02)
