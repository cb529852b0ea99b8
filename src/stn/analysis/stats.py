"""Across runs: mean and spread over seeds, and paired tests against a baseline variant.

Why these statistics: on 10000 test images one binomial standard error at 99% accuracy
is about 0.1 percentage points (10 images), about the size of the differences the
original study reported from single runs. So each variant is summarised over seeds
(mean, standard deviation, 95% t-interval), and each variant is compared with the
baseline on the *same* seeds and the *same* test images: the seed-paired difference
with its t-interval (run-to-run noise) and McNemar's exact test on the images where
exactly one of the two models is right (test-set noise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from stn.analysis.calibration import ece_from_predictions
from stn.analysis.classification import macro_f1, per_class_accuracy_table
from stn.analysis.significance import holm, mcnemar_exact, minimum_detectable_difference
from stn.atomic import write_json
from stn.errors import StnError
from stn.layout import RunPaths

# The original study's single 50-epoch runs (its README), for the results table.
ORIGINAL_STUDY = {
    "stn-conv": (0.9921, 0.0296),
    "stn-coordconv": (0.9908, 0.0312),
    # its "leakyrelu" run used CoordConv and nn.LeakyReLU(True), i.e. slope 1
    "stn-coordconv-leakyrelu": (0.9913, 0.0293),
}


def load_runs(dataset: str, variants: list[str], seeds: list[int], root: Path = Path(".")) -> pd.DataFrame:
    """One row per run of `dataset`: variant, seed, test accuracy and NLL."""
    rows = []
    for variant in variants:
        for seed in seeds:
            path = RunPaths(dataset, variant, seed, root).metrics
            if not path.is_file():
                raise StnError(f"{path}: missing; run dvc repro to evaluate {dataset} {variant} seed {seed}")
            m = json.loads(path.read_text())
            predictions = pd.read_csv(RunPaths(dataset, variant, seed, root).predictions)
            actual, predicted = predictions["actual"].to_numpy(), predictions["predicted"].to_numpy()
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "seed": seed,
                    "accuracy": m["accuracy"],
                    "loss": m["loss"],
                    "parameters": m.get("parameters"),
                    "ece": ece_from_predictions(predictions) if "confidence" in predictions else float("nan"),
                    "macro_f1": macro_f1(actual, predicted),
                }
            )
    return pd.DataFrame(rows)


def t_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided t-interval of the mean; (nan, nan) with fewer than two values."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean() - half), float(values.mean() + half)


def summary_json(summary: pd.DataFrame) -> dict:
    """The summary as JSON-ready numbers (null where a statistic needs more seeds)."""
    table = summary.round(6).astype(object).where(summary.notna(), None)
    return table.to_dict(orient="index")


def headline(row: pd.Series) -> dict:
    """The few numbers `dvc metrics show` lists per (dataset, variant): accuracy in %, NLL."""

    def pct(x: float) -> float | None:
        return None if pd.isna(x) else round(100 * float(x), 3)

    return {
        "seeds": int(row["n_seeds"]),
        "acc": pct(row["accuracy_mean"]),
        "sd": pct(row["accuracy_std"]),
        "ci_low": pct(row["ci95_low"]),
        "ci_high": pct(row["ci95_high"]),
        "nll": round(float(row["loss_mean"]), 4),
        "ece": pct(row["ece_mean"]),
        "macro_f1": round(float(row["macro_f1_mean"]), 4),
    }


def write_summary(folder: Path, summary: pd.DataFrame, prefix: str = "") -> None:
    """One small JSON per variant, so `dvc metrics show` is a narrow table with a row each."""
    for variant, row in summary.iterrows():
        write_json(folder / f"{prefix}{variant}.json", headline(row))


def summarize_variants(runs: pd.DataFrame) -> pd.DataFrame:
    rows = {}
    for variant, group in runs.groupby("variant", sort=False):
        low, high = t_interval(group["accuracy"].to_numpy())
        rows[variant] = {
            "n_seeds": len(group),
            "accuracy_mean": group["accuracy"].mean(),
            "accuracy_std": group["accuracy"].std(ddof=1) if len(group) > 1 else float("nan"),
            "ci95_low": low,
            "ci95_high": high,
            "loss_mean": group["loss"].mean(),
            "loss_std": group["loss"].std(ddof=1) if len(group) > 1 else float("nan"),
            "ece_mean": group["ece"].mean(),
            "macro_f1_mean": group["macro_f1"].mean(),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def paired_comparisons(
    runs: pd.DataFrame, baseline: str, seeds: list[int], root: Path = Path(".")
) -> pd.DataFrame:
    """Each variant against `baseline` on the same dataset, paired by seed and by test image."""
    dataset = runs["dataset"].iloc[0]
    base = runs[runs["variant"] == baseline].set_index("seed")["accuracy"]
    base_correct = {s: _correct(RunPaths(dataset, baseline, s, root)) for s in seeds}
    rows = []
    for variant, group in runs.groupby("variant", sort=False):
        if variant == baseline:
            continue
        diff = group.set_index("seed")["accuracy"] - base
        low, high = t_interval(diff.to_numpy())
        p_t = (
            float(stats.ttest_rel(group.set_index("seed")["accuracy"][seeds], base[seeds]).pvalue)
            if len(seeds) > 1 and np.any(diff.to_numpy() != 0)
            else float("nan")
        )
        only_v = only_b = 0
        pvalues = []
        for seed in seeds:
            a, b, p = mcnemar_exact(_correct(RunPaths(dataset, variant, seed, root)), base_correct[seed])
            only_v, only_b = only_v + a, only_b + b
            pvalues.append(p)
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "baseline": baseline,
                "diff_mean": float(diff.mean()),
                "diff_ci95_low": low,
                "diff_ci95_high": high,
                "paired_t_p": p_t,
                "only_variant_right": only_v,
                "only_baseline_right": only_b,
                "mcnemar_p_per_seed": pvalues,
                # The smallest true difference this many seeds detect with 80% power, given the spread.
                "detectable": (
                    minimum_detectable_difference(float(diff.std(ddof=1)), len(diff))
                    if len(diff) > 1 and diff.std(ddof=1) > 0
                    else float("nan")
                ),
            }
        )
    return with_holm(pd.DataFrame(rows))


def with_holm(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Add Holm-adjusted paired-t p-values over all the comparisons in the table."""
    out = comparisons.copy()
    out["paired_t_p_holm"] = holm(out["paired_t_p"].to_numpy()) if len(out) else []
    return out


def _correct(paths: RunPaths) -> np.ndarray:
    predictions = pd.read_csv(paths.predictions)
    return (predictions["actual"] == predictions["predicted"]).to_numpy()


def _pct(x: float, digits: int = 2) -> str:
    return "n/a" if np.isnan(x) else f"{100 * x:.{digits}f}"


def results_table(summary: pd.DataFrame) -> str:
    """The markdown results table (also copied into the README)."""
    lines = [
        "| variant | seeds | test accuracy % (mean ± sd) | 95% CI of mean | test NLL (mean ± sd) "
        "| original study (1 run) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for variant, row in summary.iterrows():
        original = ORIGINAL_STUDY.get(variant)
        orig = f"{100 * original[0]:.2f}% / {original[1]:.4f}" if original else "—"
        lines.append(
            f"| {variant} | {int(row['n_seeds'])} "
            f"| {_pct(row['accuracy_mean'])} ± {_pct(row['accuracy_std'])} "
            f"| {_pct(row['ci95_low'])} – {_pct(row['ci95_high'])} "
            f"| {row['loss_mean']:.4f} ± {row['loss_std']:.4f} | {orig} |"
        )
    return "\n".join(lines)


def comparisons_table(comparisons: pd.DataFrame) -> str:
    lines = [
        "| variant − baseline | accuracy diff (pp, mean over seeds) | 95% CI | paired t p | Holm p "
        "| detectable diff (pp, 80% power) | images only variant right / only baseline right "
        "| McNemar p per seed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for _, row in comparisons.iterrows():
        ps = ", ".join(f"{p:.3g}" for p in row["mcnemar_p_per_seed"])
        p_t = "n/a" if np.isnan(row["paired_t_p"]) else f"{row['paired_t_p']:.3g}"
        p_h = "n/a" if np.isnan(row["paired_t_p_holm"]) else f"{row['paired_t_p_holm']:.3g}"
        mdd = "n/a" if np.isnan(row["detectable"]) else f"{100 * row['detectable']:.2f}"
        lines.append(
            f"| {row['variant']} − {row['baseline']} | {100 * row['diff_mean']:+.3f} "
            f"| {100 * row['diff_ci95_low']:+.3f} to {100 * row['diff_ci95_high']:+.3f} | {p_t} | {p_h} "
            f"| {mdd} | {row['only_variant_right']} / {row['only_baseline_right']} | {ps} |"
        )
    return "\n".join(lines)


def per_class_means(dataset: str, variants: list[str], seeds: list[int], root: Path = Path(".")) -> dict:
    """Per-class test accuracy of each variant, mean over seeds (keys: the digit as a string)."""
    out = {}
    for variant in variants:
        per_seed = [
            json.loads(RunPaths(dataset, variant, s, root).metrics.read_text())["per_class_accuracy"]
            for s in seeds
        ]
        out[variant] = pd.DataFrame(per_seed).mean().rename(index=int)
    return out


def quality_table(summary: pd.DataFrame) -> str:
    """Calibration and per-class balance beside accuracy: ECE (15 bins) and macro-F1, mean over seeds."""
    lines = [
        "| variant | expected calibration error (%) | macro-F1 | test NLL |",
        "| --- | ---: | ---: | ---: |",
    ]
    for variant, row in summary.iterrows():
        lines.append(
            f"| {variant} | {100 * row['ece_mean']:.3f} | {row['macro_f1_mean']:.4f} "
            f"| {row['loss_mean']:.4f} |"
        )
    return "\n".join(lines)


def original_side_by_side(runs: pd.DataFrame) -> str:
    """Each of the original study's single runs beside the matching variant's seeds."""
    lines = [
        "| original study (1 run) | matching variant | our seeds: accuracy % | where the original falls |",
        "| --- | --- | --- | --- |",
    ]
    for variant, (accuracy, loss) in ORIGINAL_STUDY.items():
        ours = runs[runs["variant"] == variant]["accuracy"]
        if ours.empty:
            continue
        values = ", ".join(f"{100 * a:.2f}" for a in sorted(ours))
        above = int((ours < accuracy).sum())
        place = (
            "above every seed"
            if above == len(ours)
            else "below every seed"
            if above == 0
            else f"above {above} of {len(ours)} seeds"
        )
        lines.append(f"| {100 * accuracy:.2f}% / NLL {loss:.4f} | {variant} | {values} | {place} |")
    return "\n".join(lines)


def data_note(provenance: dict) -> str:
    """Which MNIST produced the numbers, from the download stage's provenance record."""
    return f"Data: MNIST from {provenance['source']} — {provenance['note']}."


def _significance_sentence(comparisons: pd.DataFrame, alpha: float = 0.05) -> str:
    significant = comparisons[comparisons["paired_t_p_holm"] < alpha]
    if significant.empty:
        return "Here no variant differs from the baseline significantly after Holm correction."
    names = ", ".join(f"`{v}`" for v in significant["variant"])
    return f"Here {names} differ(s) from the baseline significantly after Holm correction."


def report(
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    params: object,
    provenance: dict,
    runs: pd.DataFrame,
    per_class: dict,
) -> str:
    """The markdown report of the study: results, paired comparisons, and how to read them."""
    train, study = params.train_for("mnist"), params.studies.upright
    return f"""# Results

Generated by the `compare` stage from `metrics/eval/mnist/*.json` and `plots/predictions/mnist/*.csv`
({len(study.seeds)} seeds per variant: {", ".join(map(str, study.seeds))}; {train.epochs} epochs,
SGD lr {train.lr}, batch {train.batch_size}; {params.mnist.train_count} training and
{params.mnist.test_count} test images).

{data_note(provenance)}

## Test accuracy and loss per variant

{results_table(summary)}

The 95% CI is a t-interval over seeds: it covers run-to-run variation (initialisation,
batch order, dropout). The original study's numbers are single runs with no error bar; its
"Leaky ReLU" run used CoordConv and `nn.LeakyReLU(True)`, i.e. negative slope 1 (linear), so
it is listed beside `stn-coordconv-leakyrelu` only for reference.

## Each variant against the baseline ({params.compare.baseline})

{comparisons_table(comparisons)}

How to read this: the accuracy difference is paired by seed (same seed, same test images);
its CI is a t-interval over the seed-paired differences. McNemar's exact test counts the test
images on which exactly one of the two models is right; a small p-value in every seed says the
two models disagree more one way than chance would allow on this test set. A difference whose
CI straddles 0 and whose McNemar p-values are large is not distinguishable from noise here.

## Per-class accuracy (%, mean over seeds), in the original study's layout

{per_class_accuracy_table(per_class)}

## Calibration and balance across digits

{quality_table(summary)}

## The original study's single runs beside our seeds

{original_side_by_side(runs)}

The original runs used the official training images, no fixed seed and one run each; the
seeds above show how far one run of the same variant moves. An original number inside our
range is one draw of the same distribution; the ranking it suggested (Conv, then Leaky ReLU,
then CoordConv) would need differences larger than the detectable differences of the
comparison table. {_significance_sentence(comparisons)}

## Why these metrics

- Accuracy / error rate: the quantity the field reports on MNIST; with 10000 test images one
  binomial standard error at 99% accuracy is about 0.1 pp (10 images), so differences of
  that size between single runs say nothing.
- Average NLL: uses the predicted probabilities, so it separates models with equal accuracy
  but different confidence, and it moves before accuracy does.
- Per-class accuracy and the confusion matrix (per run, in `metrics/eval` and
  `plots/predictions`): show whether a variant trades errors between digits (e.g. 4/9, 7/2)
  rather than removing them.
- Mean ± sd over seeds and paired tests: the only way to tell a real difference from
  run-to-run and test-set noise. The paired t p-values are Holm-corrected over the
  comparisons of the table (several variants against one baseline), and the detectable
  difference (80% power at the observed seed-to-seed spread) gives "no difference" a size.
- Expected calibration error (15 equal-width confidence bins, Guo et al. 2017): whether the
  predicted probabilities can be trusted as probabilities. The NLL mixes this with accuracy;
  the ECE isolates it (`plots/compare/reliability.png` shows the bins).
- Macro-F1: precision and recall per digit, averaged with equal weight per class, so a
  variant that buys accuracy on frequent digits at the expense of rare ones shows it.
"""
