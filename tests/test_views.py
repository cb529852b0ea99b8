"""stn.analysis.views: the aggregated views `dvc plots show` draws and the headline `dvc exp show` lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stn.analysis.views import (
    ERROR,
    ROTATION,
    VALIDATION,
    accuracy_headline,
    error_per_variant,
    rotation_robustness,
    study_views,
    validation_curves,
    write_views,
)


def _histories() -> pd.DataFrame:
    rows = [
        {"dataset": d, "variant": v, "seed": s, "epoch": e, "val_accuracy": 0.5 + 0.1 * e + 0.01 * s}
        for d in ("rts", "rot")  # not alphabetical: the study's order is kept
        for v in ("stn-conv", "cnn")
        for s in (0, 1)
        for e in (2, 1)
    ]
    return pd.DataFrame(rows)


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dataset": ["rts", "rts", "rot"],
            "variant": ["stn-conv", "cnn", "stn-conv"],
            "n_seeds": [2, 1, 2],
            "accuracy_mean": [0.97, 0.9, 0.5],
            "ci95_low": [0.96, np.nan, -0.8],  # one seed: no interval; a collapse: beyond 0..1
            "ci95_high": [0.98, np.nan, 1.8],
        }
    )


def test_validation_curves_mean_over_seeds_in_study_order():
    curves = validation_curves(_histories())
    assert list(curves.columns) == ["dataset", "variant", "epoch", "val_accuracy", "val_error", "seeds"]
    assert list(dict.fromkeys(zip(curves["dataset"], curves["variant"], strict=True))) == [
        ("rts", "stn-conv"),
        ("rts", "cnn"),
        ("rot", "stn-conv"),
        ("rot", "cnn"),
    ]
    first = curves.iloc[0]
    assert first["epoch"] == 1 and first["seeds"] == 2
    assert first["val_accuracy"] == pytest.approx(100 * (0.6 + 0.005))
    assert (curves["val_accuracy"] + curves["val_error"]).eq(100).all()
    assert validation_curves(_histories().drop(columns="val_accuracy")).empty


def test_error_per_variant_clips_the_interval():
    error = error_per_variant(_summary()).set_index(["dataset", "variant"])
    assert error.loc[("rts", "stn-conv"), ["error", "error_low", "error_high"]].tolist() == pytest.approx(
        [3, 2, 4]
    )
    assert error.loc[("rts", "cnn"), ["error_low", "error_high"]].tolist() == pytest.approx([10, 10])
    assert error.loc[("rot", "stn-conv"), ["error_low", "error_high"]].tolist() == [0, 100]


def test_rotation_robustness_mean_and_range():
    curves = pd.DataFrame(
        {
            "dataset": "rot",
            "variant": "cnn",
            "seed": [0, 1, 0, 1],
            "angle": [90, 90, 0, 0],
            "accuracy": [0.2, 0.4, 0.9, 1],
        }
    )
    out = rotation_robustness(curves)
    assert out["angle"].tolist() == [0, 90]
    assert out.iloc[1][["accuracy", "accuracy_min", "accuracy_max", "seeds"]].tolist() == pytest.approx(
        [30, 20, 40, 2]
    )
    assert rotation_robustness(pd.DataFrame()).empty


def test_accuracy_headline_short_unique_keys():
    assert accuracy_headline(_summary()) == {
        "rts": {"stn-conv": 97.0, "cnn": 90.0},
        "rot": {"stn-conv": 50.0},
    }


def test_views_are_a_function_of_the_inputs(tmp_path):
    """Shuffled input rows give the same bytes: sorted output, fixed float format."""
    histories = _histories()
    curves = histories.rename(columns={"epoch": "angle", "val_accuracy": "accuracy"})
    write_views(tmp_path / "a", study_views(_summary(), histories, curves))
    shuffled = histories.sample(frac=1, random_state=0)
    # the same first appearance of each dataset and variant, the rows otherwise shuffled
    shuffled = pd.concat([histories.iloc[[0, 4, 8, 12]], shuffled]).drop_duplicates()
    shuffled_curves = shuffled.rename(columns={"epoch": "angle", "val_accuracy": "accuracy"})
    write_views(tmp_path / "b", study_views(_summary(), shuffled, shuffled_curves))
    for name in (VALIDATION, ERROR, ROTATION):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / VALIDATION).read_text().splitlines()[1] == "rts,stn-conv,1,60.5000,39.5000,2"
