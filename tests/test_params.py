"""params.yaml is checked as a whole before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT

from stn.errors import ParamsError
from stn.params import load_params, parse_params

DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def _with(path: str, value: object) -> dict:
    params = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[last] = value
    return params


def test_default_params_are_valid() -> None:
    params = load_params(ROOT / "params.yaml")
    assert list(params.variants) == [
        "cnn",
        "stn-conv",
        "stn-coordconv",
        "stn-conv-leakyrelu",
        "stn-coordconv-leakyrelu",
    ]
    assert params.seeds == [0, 1, 2] and params.train.epochs == 50 and params.train.lr == 0.01
    assert params.variants["stn-conv-leakyrelu"].negative_slope == 0.01


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "variants.stn-conv.layer",
            "conv3d",
            r"variants.stn-conv.layer: Input should be 'conv' or 'coordconv'",
        ),
        (
            "variants.stn-conv.activation",
            "gelu",
            r"variants.stn-conv.activation: Input should be 'relu' or 'leakyrelu'",
        ),
        (
            "variants.stn-conv.activaton",
            "relu",
            r"variants.stn-conv.activaton: unknown key \(did you mean 'activation'\?\)",
        ),
        (
            "variants.stn-conv.negative_slope",
            1.0,
            r"variants.stn-conv.negative_slope: Input should be less than 1",
        ),
        ("train.epochs", 0, r"train.epochs: Input should be greater than 0"),
        ("train.epochs", -3, r"train.epochs: Input should be greater than 0"),
        ("train.batch_size", 0, r"train.batch_size: Input should be greater than 0"),
        ("train.lr", 0.0, r"train.lr: Input should be greater than 0"),
        ("train.lr", -0.1, r"train.lr: Input should be greater than 0"),
        ("train.epochs", 2.5, r"train.epochs: Input should be a valid integer"),
        ("train.lr", True, r"train.lr: Value error, expected a number, got a boolean"),
        ("train.lr", float("inf"), r"train.lr: Input should be a finite number"),
        ("variants.cnn.layer", "coordconv", r"variants.cnn: Value error, layer, activation.*stn: false"),
        ("train.bacth_size", 64, r"train.bacth_size: unknown key \(did you mean 'batch_size'\?\)"),
        ("seeds", [0, "one"], r"seeds.1: Input should be a valid integer"),
        ("seeds", [0, 1.5], r"seeds.1: Input should be a valid integer"),
        ("seeds", [1, 1], r"seeds must be distinct"),
        ("seeds", [], r"seeds: List should have at least 1 item"),
        ("compare.baseline", "stn-nope", r"compare.baseline 'stn-nope' is not a variant"),
        ("trian", {}, r"trian: unknown key \(did you mean 'train'\?\)"),
        ("variants", {}, r"variants: Dictionary should have at least 1 item"),
    ],
)
def test_bad_params_name_the_key(path: str, value: object, message: str) -> None:
    with pytest.raises(ParamsError, match=message) as info:
        parse_params(_with(path, value))
    assert str(info.value).startswith("params.yaml: invalid parameters:")


def test_unknown_variant_name() -> None:
    with pytest.raises(ParamsError, match="variants.stn-foo: no such variant; defined: cnn, stn-conv"):
        parse_params(DEFAULT).variant("stn-foo")


def test_params_file_problems(tmp_path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(tmp_path / "params.yaml")
