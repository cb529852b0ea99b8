"""matplotlib for files: the Agg backend and an atomic PNG writer, shared by every figure.

Kept apart from the figures themselves so that a run's evaluation (which saves two
pictures) does not depend on the study-level figure code.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from stn.atomic import write_with  # noqa: E402

__all__ = ["plt", "save_figure"]


def save_figure(fig: plt.Figure, path: Path) -> None:
    """Write `fig` to `path` as PNG (100 dpi, tight box) atomically, then close it."""
    write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
