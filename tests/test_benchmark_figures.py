"""The distorted benchmark's figures, on synthetic runs shaped like load_study's: collapsed runs
off the scale with a count at the edge, intervals inside 0..100 and the axis, one distinct colour
per variant shared by every figure, labels apart, and the same PNG bytes for the same input."""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib
import matplotlib.colors as mcolors
import matplotlib.style
import numpy as np
import pandas as pd
import pytest

from stn.analysis.benchmark import error_figure, rotation_figure, summarize
from stn.analysis.ideas import COLLAPSE_ACCURACY
from stn.analysis.palette import PALETTES, group_of, variant_colors
from stn.analysis.plotting import plt, save_figure

VARIANTS = [
    "cnn",
    "cnn-aug",
    "stn-conv",
    "stn-coordconv",
    "stn-bgpad",
    "stn-similarity",
    "stn-idpen",
    "stn-loclr",
    "stn-ic",
    "stn-attention",
    "stn-projective",
    "stn-ic-loclr",
]
CHANCE = 0.1135  # what a collapsed run scores: the most frequent test digit
COLLAPSED_ERROR = 100 * (1 - CHANCE)


def _runs() -> pd.DataFrame:
    """Three seeds per variant (five for stn-conv) on `proj` and `rot`, accuracies near 0.97;
    on proj every stn-ic run and one stn-bgpad run collapsed, on rot every stn-ic run."""
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("proj", "rot"):
        for k, variant in enumerate(VARIANTS):
            for seed in range(5 if variant == "stn-conv" else 3):
                accuracy = 0.96 + 0.002 * k + rng.normal(0, 0.003)
                if variant == "stn-ic" or (dataset == "proj" and variant == "stn-bgpad" and seed == 2):
                    accuracy = CHANCE
                rows.append(
                    {
                        "dataset": dataset,
                        "variant": variant,
                        "seed": seed,
                        "accuracy": accuracy,
                        "loss": 1 - accuracy,
                        "parameters": 1000 + k,
                        "ece": 0.01,
                        "macro_f1": accuracy,
                    }
                )
    return pd.DataFrame(rows)


def _curves() -> pd.DataFrame:
    """Rotation curves as load_rotation_curves gives them: the upright study's variants on mnist,
    the distorted study's on rot (stn-ic at chance)."""
    upright = ["cnn", "stn-conv", "stn-coordconv", "stn-coordconv-cls", "stn-coordconv-linear"]
    rows = []
    for dataset, variants in (("mnist", upright), ("rot", VARIANTS)):
        for k, variant in enumerate(variants):
            for seed in range(3):
                for angle in range(0, 181, 15):
                    accuracy = (
                        CHANCE if variant == "stn-ic" else 0.99 - 0.004 * angle + 0.002 * k + 0.001 * seed
                    )
                    rows.append(
                        {
                            "angle": angle,
                            "accuracy": accuracy,
                            "dataset": dataset,
                            "variant": variant,
                            "seed": seed,
                        }
                    )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return _runs()


@pytest.fixture(scope="module")
def summary(runs: pd.DataFrame) -> pd.DataFrame:
    return summarize(runs)


@pytest.fixture()
def proj(runs: pd.DataFrame, summary: pd.DataFrame):
    fig = error_figure(runs, summary, "proj", "proj")
    yield fig.axes[0]
    plt.close(fig)


def _row_artists(ax: plt.Axes, row: int) -> tuple[list, list]:
    """The scatter collections and lines drawn in a variant's row (the paper's lines excluded)."""
    near = lambda ys: len(ys) > 0 and bool(np.all(np.abs(np.asarray(ys, dtype=float) - row) < 0.5))  # noqa: E731
    collections = [c for c in ax.collections if near(c.get_offsets()[:, 1])]
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("paper") and near(ln.get_ydata())]
    return collections, lines


def test_collapsed_runs_do_not_set_the_scale(runs: pd.DataFrame, proj: plt.Axes) -> None:
    healthy = runs[(runs["dataset"] == "proj") & (runs["accuracy"] > COLLAPSE_ACCURACY)]
    low, top = proj.get_xlim()
    assert low == 0
    assert 100 * (1 - healthy["accuracy"].min()) <= top < 10 < COLLAPSED_ERROR
    # No run is drawn beyond the edge: the collapsed ones are not dots at all.
    dots = np.concatenate([c.get_offsets()[:, 0] for c in proj.collections])
    assert dots.max() <= top


def test_collapsed_runs_are_counted_at_the_edge(proj: plt.Axes) -> None:
    top = proj.get_xlim()[1]
    notes = {t.get_text(): t for t in proj.texts}
    assert "3 collapsed" in notes
    assert notes["3 collapsed"].xy == (top, VARIANTS.index("stn-ic"))
    # stn-bgpad: one of three collapsed, its mean (pulled far off the scale) given in words.
    (bgpad,) = [t for t in notes if t.startswith("1 collapsed")]
    assert notes[bgpad].xy == (top, VARIANTS.index("stn-bgpad"))
    mean = float(bgpad.split("mean ")[1].rstrip("%"))
    assert top < mean < COLLAPSED_ERROR
    for variant in ("stn-ic", "stn-bgpad"):
        _, lines = _row_artists(proj, VARIANTS.index(variant))
        markers = [ln for ln in lines if ln.get_marker() == ">"]
        assert len(markers) == 1 and not markers[0].get_clip_on()
        assert markers[0].get_xdata()[0] == top
    assert len(notes) == 2  # no variant without a collapsed run gets a note


def test_a_variant_whose_runs_all_collapsed_shows_only_the_marker(proj: plt.Axes) -> None:
    collections, lines = _row_artists(proj, VARIANTS.index("stn-ic"))
    assert collections == []  # no dots, no mean
    assert [ln.get_marker() for ln in lines] == [">"]


def test_intervals_lie_within_0_100_and_the_axis(summary: pd.DataFrame, proj: plt.Axes) -> None:
    bgpad = summary[(summary["dataset"] == "proj") & (summary["variant"] == "stn-bgpad")].iloc[0]
    assert bgpad["ci95_low"] < 0 and bgpad["ci95_high"] > 1  # the raw t-interval leaves 0..100
    top = proj.get_xlim()[1]
    for line in proj.get_lines():
        if line.get_marker() != ">":
            assert np.all((np.asarray(line.get_xdata()) >= 0) & (np.asarray(line.get_xdata()) <= top))
    # stn-bgpad's interval runs from 0 to the edge, without caps where it was cut.
    _, lines = _row_artists(proj, VARIANTS.index("stn-bgpad"))
    (bar,) = [ln for ln in lines if ln.get_marker() != ">"]  # no caps: both ends were cut
    assert list(bar.get_xdata()) == [0, top] and bar.get_ydata()[0] == bar.get_ydata()[1]


def test_every_healthy_variant_has_runs_mean_and_interval(proj: plt.Axes) -> None:
    for row, variant in enumerate(VARIANTS):
        if variant in ("stn-ic", "stn-bgpad"):
            continue
        collections, lines = _row_artists(proj, row)
        dots, means = sorted(collections, key=lambda c: len(c.get_offsets()), reverse=True)
        assert (
            len(dots.get_offsets()) == (5 if variant == "stn-conv" else 3) and len(means.get_offsets()) == 1
        )
        assert len(lines) == 3  # the bar and its two caps


def test_every_variant_has_its_own_colour_in_every_figure(runs: pd.DataFrame, summary: pd.DataFrame) -> None:
    seen = {}
    for dataset in ("proj", "rot"):
        fig = error_figure(runs, summary, dataset, dataset)
        ax = fig.axes[0]
        colours = {}
        for row, variant in enumerate(VARIANTS):
            collections, lines = _row_artists(ax, row)
            faces = {mcolors.to_hex(c.get_facecolor()[0]) for c in collections}
            edges = {mcolors.to_hex(ln.get_color()) for ln in lines}
            (colours[variant],) = faces | edges  # dots, mean, bar, marker: one colour
        plt.close(fig)
        assert len(set(colours.values())) == len(VARIANTS)
        seen[dataset] = colours
    assert seen["proj"] == seen["rot"]
    curves = _curves()
    fig = rotation_figure(curves)
    for ax in fig.axes:
        lines = {
            ln.get_label(): mcolors.to_hex(ln.get_color()) for ln in ax.get_lines() if len(ln.get_xdata()) > 2
        }
        dataset = ax.get_title().removeprefix("trained on ")
        assert set(lines) == set(curves.loc[curves["dataset"] == dataset, "variant"])
        assert len(set(lines.values())) == len(lines)
        assert all(seen["proj"][v] == c for v, c in lines.items() if v in seen["proj"])
    plt.close(fig)


def test_rotation_legend_lists_every_variant_once_by_group() -> None:
    curves = _curves()
    fig = rotation_figure(curves)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[-1] == "chance (10%)"
    assert sorted(labels[:-1]) == sorted(set(curves["variant"]))
    groups = [("control", "conventional", "idea").index(group_of(v)) for v in labels[:-1]]
    assert groups == sorted(groups)
    colours = [mcolors.to_hex(h.get_color()) for h in legend.legend_handles[:-1]]
    assert len(set(colours)) == len(colours)
    plt.close(fig)


def test_labels_do_not_overlap_and_the_title_says_what_is_drawn(proj: plt.Axes) -> None:
    fig = proj.figure
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in proj.get_yticklabels()]
    assert [t.get_text() for t in proj.get_yticklabels()] == VARIANTS
    assert not any(a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    title = proj.get_title(loc="left")
    assert title.startswith("proj (projectively distorted digits)")
    assert "dots: one run per seed" in title and "95% t-interval" in title and "collapsed" in title


def test_same_input_same_png_bytes(runs: pd.DataFrame, summary: pd.DataFrame, tmp_path: Path) -> None:
    for name, draw in (
        ("error", lambda: error_figure(runs, summary, "proj", "proj")),
        ("rotation", lambda: rotation_figure(_curves())),
    ):
        save_figure(draw(), tmp_path / f"{name}-1.png")
        save_figure(draw(), tmp_path / f"{name}-2.png")
        first = (tmp_path / f"{name}-1.png").read_bytes()
        assert first[:8] == b"\x89PNG\r\n\x1a\n"
        assert first == (tmp_path / f"{name}-2.png").read_bytes()


def test_palette_is_grouped_distinct_and_from_colour_blind_safe_palettes() -> None:
    names = VARIANTS + ["stn-coordconv-cls", "stn-coordconv-linear", "stn-conv-leakyrelu"]
    colours = variant_colors(names)
    assert len(set(colours.values())) == len(names)
    assert {group_of(v) for v in ("cnn", "cnn-aug")} == {"control"}
    assert {group_of(v) for v in ("stn-conv", "stn-coordconv", "stn-coordconv-cls")} == {"conventional"}
    assert {group_of(v) for v in ("stn-ic", "stn-ic-loclr", "stn-attention")} == {"idea"}
    assert colours["cnn"] in PALETTES["control"] and colours["stn-conv"] in PALETTES["conventional"]
    # The order of the list given decides within a group, not which other variants are present.
    assert variant_colors(["stn-ic", "cnn", "stn-conv"]) == {
        "stn-ic": PALETTES["idea"][0],
        "cnn": PALETTES["control"][0],
        "stn-conv": PALETTES["conventional"][0],
    }
    library = {
        mcolors.to_hex(c)
        for c in matplotlib.style.library["tableau-colorblind10"]["axes.prop_cycle"].by_key()["color"]
    }
    library |= {mcolors.to_hex(c) for k in ("petroff10", "okabe_ito") for c in matplotlib.color_sequences[k]}
    own = {c for palette in PALETTES.values() for c in palette} - library
    assert own == {"#00466b"}  # the one darker blue, for a second conventional STN
    # More ideas than the palette holds still get distinct colours.
    many = variant_colors([f"idea-{i}" for i in range(15)])
    assert len(set(many.values())) == 15
