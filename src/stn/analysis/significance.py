"""Significance across seeds and test images: Holm correction, paired t-intervals, power, McNemar.

Several variants are compared with one baseline, so the p-values are Holm-adjusted
(controls the family-wise error rate, never less powerful than Bonferroni; neither scipy
nor the environment offers it, so it is implemented here). With only a few seeds per
variant, the minimum detectable difference says how large a true effect the seed-paired
t-test could have found, given the observed seed-to-seed spread of the paired differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from scipy.optimize import brentq


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Step-down: the k-th smallest of m p-values is multiplied by m - k + 1, then a running
    maximum keeps the adjusted values monotone, capped at 1. NaN entries are passed through
    and do not count towards m.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def paired_t_interval(diffs: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of the paired differences and its two-sided t confidence interval."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        raise ValueError("need at least 2 paired differences for a t-interval")
    mean = float(d.mean())
    half = stats.t.ppf(0.5 + confidence / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return mean, mean - float(half), mean + float(half)


def paired_t_power(delta: float, sd: float, n_pairs: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample (paired) t-test at true mean difference ``delta``."""
    df = n_pairs - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(delta) * math.sqrt(n_pairs) / sd
    # P(T < -crit) written as the upper tail of -T (noncentrality -ncp): scipy's nct.cdf
    # returns NaN in that far tail at 1 degree of freedom, its sf does not.
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.sf(crit, df, -ncp))


def minimum_detectable_difference(
    sd_of_paired_diffs: float, n_pairs: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest true mean difference a two-sided paired t-test on ``n_pairs`` detects with ``power``.

    This is the detectable effect given the observed seed-to-seed spread (standard deviation)
    of the paired differences: a non-significant comparison says little about effects below it.
    Solved exactly with the noncentral t distribution; same units as ``sd_of_paired_diffs``.
    """
    if n_pairs < 2:
        raise ValueError("need at least 2 pairs")
    if not sd_of_paired_diffs > 0:
        raise ValueError("the standard deviation must be positive")
    if not alpha < power < 1:
        raise ValueError("want alpha < power < 1")

    def gap(delta: float) -> float:
        return paired_t_power(delta, sd_of_paired_diffs, n_pairs, alpha) - power

    high = sd_of_paired_diffs
    while gap(high) < 0:
        high *= 2
    return float(brentq(gap, 0.0, high, xtol=1e-12 * sd_of_paired_diffs))


def required_pairs(
    sd_of_paired_diffs: float,
    delta: float,
    alpha: float = 0.05,
    power: float = 0.8,
    max_pairs: int = 1_000_000,
) -> int:
    """Smallest number of pairs (>= 2) whose paired t-test reaches ``power`` at true difference ``delta``."""
    if not delta != 0 or not sd_of_paired_diffs > 0:
        raise ValueError("want a nonzero difference and a positive standard deviation")

    def enough(n: int) -> bool:
        return paired_t_power(abs(delta), sd_of_paired_diffs, n, alpha) >= power

    low, high = 1, 2  # invariant: not enough(low) (or low == 1), enough(high)
    while not enough(high):
        low, high = high, high * 2
        if high > max_pairs:
            raise ValueError(f"more than {max_pairs} pairs needed")
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int, float]:
    """McNemar's exact test on the same test images: (only a right, only b right, two-sided p).

    Under the null either model is equally likely to be the one right on a discordant image,
    so the count is Binomial(discordant, 1/2); p = 1 when there are no discordant images.
    """
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(min(only_a, only_b), n, 0.5).pvalue)


def format_p(p: float, digits: int = 3) -> str:
    """A p-value for a table: `digits` significant digits, "n/a" when undefined, and a bound
    instead of 0 when it underflows (McNemar on thousands of discordant images can)."""
    if np.isnan(p):
        return "n/a"
    return "<1e-300" if p < 1e-300 else f"{p:.{digits}g}"
