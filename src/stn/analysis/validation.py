"""Per-epoch validation accuracy: is a training budget past the point of diminishing returns?

Each run evaluates the held-out validation split after every epoch (the `val_accuracy`
column of its training log). Averaged over seeds per variant, the curve shows where the
gains flatten; the gain over the last stretch of epochs, with its spread over seeds, says
whether more epochs would still pay. One validation image out of 5000 is 0.02 pp, and one
binomial standard error at 99% accuracy is about 0.14 pp.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def has_validation(histories: pd.DataFrame) -> bool:
    return "val_accuracy" in histories and histories["val_accuracy"].notna().any()


def checkpoints(last_epoch: int, count: int = 4) -> list[int]:
    """Epochs to tabulate: evenly spread, ending with the last (e.g. 50 -> 12, 25, 38, 50)."""
    return sorted({max(1, round(last_epoch * k / count)) for k in range(1, count + 1)})


def returns_table(histories: pd.DataFrame, keys: list[str], epochs: list[int]) -> str:
    """Markdown: mean validation accuracy (%) at `epochs`, and the gain from the second-last to
    the last of them (pp, mean ± sd over seeds), one row per group of `keys`."""
    if not has_validation(histories):
        return "No validation split was held out, so there are no validation curves."
    epochs = sorted(set(epochs))
    at = histories[histories["epoch"].isin(epochs)].pivot_table(
        index=[*keys, "seed"], columns="epoch", values="val_accuracy", sort=False
    )
    gain_head = f" gain {epochs[-2]}→{epochs[-1]} (pp) |" if len(epochs) > 1 else ""
    lines = [
        f"| {' | '.join(keys)} | " + " | ".join(f"epoch {e}" for e in epochs) + f" |{gain_head}",
        "| " + " | ".join("---" for _ in keys) + " |" + " ---: |" * (len(epochs) + bool(gain_head)),
    ]
    for group, rows in at.groupby(level=list(range(len(keys))), sort=False):
        group = group if isinstance(group, tuple) else (group,)
        cells = [f"{100 * rows[e].mean():.2f}" for e in epochs]
        if gain_head:
            gain = 100 * (rows[epochs[-1]] - rows[epochs[-2]])
            spread = f" ± {gain.std(ddof=1):.2f}" if len(gain) > 1 else ""
            cells.append(f"{gain.mean():+.2f}{spread}")
        lines.append(f"| {' | '.join(map(str, group))} | {' | '.join(cells)} |")
    return "\n".join(lines)


def validation_figure(histories: pd.DataFrame, title: str) -> plt.Figure:
    """Validation accuracy per epoch: mean over seeds per variant, the band spanning the seeds."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    stats = histories.groupby(["variant", "epoch"], sort=False)["val_accuracy"].agg(["mean", "min", "max"])
    for variant, rows in stats.groupby(level=0, sort=False):
        epochs = rows.index.get_level_values("epoch")
        (line,) = ax.plot(epochs, 100 * rows["mean"], label=variant)
        ax.fill_between(epochs, 100 * rows["min"], 100 * rows["max"], color=line.get_color(), alpha=0.15)
    low = 100 * stats["mean"].groupby(level=0).apply(lambda s: s.iloc[len(s) // 5 :].min()).min()
    ax.set_ylim(max(low - 0.2, 0), 100 * stats["max"].max() + 0.1)  # the part where variants differ
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig
