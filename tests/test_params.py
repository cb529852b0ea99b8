"""params.yaml: the study schema checks the whole file, the run schema the parts a run reads."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import ROOT

from stn.datasets.distortions.rot import Rotation
from stn.datasets.distortions.rts import RotationTranslationScale
from stn.errors import ParamsError
from stn.params.run import load_run_params
from stn.params.study import TrainParams, load_params, parse_params

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
    assert list(params.variants)[:6] == [
        "cnn",
        "cnn-aug",
        "stn-conv",
        "stn-coordconv",
        "stn-conv-leakyrelu",
        "stn-coordconv-leakyrelu",
    ]
    assert params.studies.upright.variants == [
        "cnn",
        "stn-conv",
        "stn-coordconv",
        "stn-coordconv-cls",
        "stn-coordconv-linear",
    ]
    assert params.variants["stn-coordconv-cls"].classifier_layer == "coordconv"
    assert params.variants["stn-coordconv-linear"].activation == "identity"
    ideas = [v for v in params.studies.distorted.variants if v.startswith("stn-") and v != "stn-conv"]
    assert len(ideas) == 9 and all(params.variants[v].output_size == (28, 28) for v in ideas)
    combination = params.variants["stn-ic-loclr"]  # two single ideas together
    assert (combination.iterations, combination.loc_lr_scale) == (2, 0.1)
    assert params.studies.upright.datasets == ["mnist"] and params.studies.upright.seeds == [0, 1, 2, 3, 4]
    assert params.studies.distorted.datasets == ["rot", "rts", "proj", "elastic"]
    assert params.train.epochs == 50 and params.train.lr == 0.01
    assert params.mnist.train_count == 60000 and params.mnist.test_count == 10000
    assert params.variants["stn-conv-leakyrelu"].negative_slope == 0.01
    mnist = params.dataset("mnist")
    assert mnist.distortion is None and mnist.validation == 5000
    assert (mnist.normalization.mean, mnist.normalization.std) == (0.1307, 0.3081)
    assert params.dataset("rot").distortion == Rotation(max_degrees=90)
    assert params.dataset("rts").distortion == RotationTranslationScale(canvas=42)
    assert params.dataset("rot").normalization is None  # computed on its own training split


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
            r"variants.stn-conv.activation: Input should be 'relu', 'leakyrelu' or 'identity'",
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
        ("studies.upright.seeds", [0, "one"], r"studies.upright.seeds.1: Input should be a valid integer"),
        ("studies.upright.seeds", [0, 1.5], r"studies.upright.seeds.1: Input should be a valid integer"),
        ("studies.distorted.seeds", [1, 1], r"studies.distorted.seeds: .*seeds must be distinct"),
        ("studies.upright.seeds", [-1], r"studies.upright.seeds: .*seeds must be non-negative"),
        ("studies.upright.seeds", [], r"studies.upright.seeds: List should have at least 1 item"),
        ("studies.upright.variants", [], r"studies.upright.variants: List should have at least 1 item"),
        (
            "compare.baseline",
            "stn-nope",
            r"compare.baseline 'stn-nope' is not among studies.upright.variants",
        ),
        ("trian", {}, r"trian: unknown key \(did you mean 'train'\?\)"),
        ("seeds", [0, 1, 2], r"seeds: unknown key; valid keys: mnist, train, .*studies"),  # moved
        ("data", {}, r"data: unknown key \(did you mean 'datasets'\?\)"),  # now `mnist`
        ("variants", {}, r"variants: Dictionary should have at least 1 item"),
        ("datasets", {}, r"datasets: Dictionary should have at least 1 item"),
        ("mnist.train_count", 0, r"mnist.train_count: Input should be greater than 0"),
        (
            "studies.distorted.datasets",
            ["rot", "rott"],
            r"studies.distorted.datasets: dataset 'rott' is not defined; defined: mnist, rot, rts",
        ),
        (
            "studies.upright.variants",
            ["cnn", "cnn-aug", "stn-conv"],
            r"studies.upright: variant 'cnn-aug' re-draws the distortion \(augment: true\) "
            r"but dataset 'mnist' has none",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-nope"], "seeds": [3]},
            r"studies.distorted: .*extra_seeds: variant 'stn-nope' is not among the study's variants",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-conv"], "seeds": [2, 3]},
            r"studies.distorted: .*extra_seeds: seeds \[2\] are already the study's seeds",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-conv"]},
            r"studies.distorted.extra_seeds.seeds: Field required",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-conv"], "seeds": []},
            r"studies.distorted.extra_seeds: .*give both variants and seeds, or neither",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-loclr"], "seeds": [3]},
            r"studies.distorted.extra_seeds: compare.baseline 'stn-conv' must be among its variants",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-conv", "stn-conv"], "seeds": [3]},
            r"studies.distorted.extra_seeds: .*variants must be distinct",
        ),
        (
            "studies.distorted.extra_seeds",
            {"variants": ["stn-conv"], "seeds": [3, 3]},
            r"studies.distorted.extra_seeds.seeds: .*seeds must be distinct",
        ),
        (
            "studies.upright.extra_seeds",
            {"variants": ["stn-conv"], "seeds": [5]},
            r"studies.upright: .*extra_seeds: only the distorted study and Table 1 have them",
        ),
        (
            "studies.distorted.rotation_curve",
            ["rot", "mnist"],
            r"studies.distorted.rotation_curve: dataset 'mnist' is not among the study's datasets",
        ),
        ("evaluate.rotation_curve.step", 0, r"evaluate.rotation_curve.step: Input should be greater than 0"),
        (
            "datasets.rot.distortion",
            {"kind": "rot", "max_degree": 90},
            r"datasets.rot.distortion\.(rot\.)?max_degree: unknown key",
        ),
        (
            "datasets.rot.distortion",
            {"kind": "rot", "max_degrees": 200},
            r"datasets.rot.distortion\.(rot\.)?max_degrees: Input should be less than or equal to 180",
        ),
        (
            "datasets.rot.distortion",
            {"kind": "spin"},
            r"datasets.rot.distortion: .*'spin'.*expected tags: 'rot', 'rts', 'proj', 'elastic'",
        ),
        (
            "datasets.rts.distortion",
            {"kind": "rts", "canvas": 30},
            r"datasets.rts.distortion(\.rts)?: .*canvas \(30\) must hold a 28x28 digit",
        ),
        (
            "datasets.proj.distortion",
            {"kind": "proj", "scale_low": 1.5, "scale_high": 1.0},
            r"datasets.proj.distortion(\.proj)?: .*scale_low \(1.5\) must be <= scale_high \(1.0\)",
        ),
        (
            "datasets.elastic.distortion",
            {"kind": "elastic", "sd": -0.1},
            r"datasets.elastic.distortion\.(elastic\.)?sd: Input should be greater than or equal to 0",
        ),
        ("datasets.rot.seeed", 3, r"datasets.rot.seeed: unknown key \(did you mean 'seed'\?\)"),
        ("datasets.rot.validation", -1, r"datasets.rot.validation: Input should be greater than or equal"),
        ("datasets.rot.train", {"epoch": 3}, r"datasets.rot.train.epoch: unknown key \(did you mean 'epochs"),
        ("datasets.rot.train", {"epochs": 0}, r"datasets.rot.train.epochs: Input should be greater than 0"),
        ("datasets.rot.normalization", {"mean": 0.1, "std": 0}, r"datasets.rot.normalization.std: Input"),
        ("datasets.Rot", {}, r"datasets: .*name 'Rot' must be lower-case"),
    ],
)
def test_bad_params_name_the_key(path: str, value: object, message: str) -> None:
    with pytest.raises(ParamsError, match=message) as info:
        parse_params(_with(path, value))
    assert str(info.value).startswith("params.yaml: invalid parameters:")


def test_unknown_variant_name() -> None:
    with pytest.raises(ParamsError, match="variants.stn-foo: no such variant; defined: cnn, cnn-aug, stn-"):
        parse_params(DEFAULT).variant("stn-foo")


def test_unknown_dataset_name() -> None:
    params = parse_params(DEFAULT)
    with pytest.raises(ParamsError, match="datasets.rott: no such dataset; defined: mnist, rot, rts"):
        params.dataset("rott")
    with pytest.raises(ParamsError, match="datasets.rott: no such dataset"):
        params.train_for("rott")


def test_unknown_dataset_in_a_study() -> None:
    raw = _with("studies.distorted.datasets", ["rot", "rot-big"])
    with pytest.raises(ParamsError, match=r"studies.distorted.datasets: dataset 'rot-big' is not defined"):
        parse_params(raw)


def test_upright_study_has_one_dataset() -> None:
    with pytest.raises(ParamsError, match=r"the upright study runs on exactly one dataset"):
        parse_params(_with("studies.upright.datasets", ["mnist", "rot"]))


def test_augment_variant_needs_a_distortion() -> None:
    raw = _with("studies.distorted.datasets", ["rot", "mnist"])  # cnn-aug is in the distorted study
    with pytest.raises(ParamsError, match=r"'cnn-aug' re-draws the distortion.*dataset 'mnist' has none"):
        parse_params(raw)
    parse_params(_with("studies.distorted.datasets", ["rot", "rts"]))  # every dataset distorted: fine


def test_train_overrides_apply_per_dataset() -> None:
    params = parse_params(DEFAULT)
    assert params.train_for("mnist") == params.train  # no overrides
    rot = params.train_for("rot")
    assert isinstance(rot, TrainParams)
    assert (rot.epochs, rot.momentum, rot.schedule) == (10, 0.9, "cosine")
    kept = ("lr", "batch_size", "threads", "device", "channels_last")
    assert all(getattr(rot, key) == getattr(params.train, key) for key in kept)
    assert params.train.epochs == 50 and params.train.momentum == 0.0  # the section itself is unchanged
    custom = parse_params(_with("datasets.mnist.train", {"lr": 0.05, "batch_size": 128}))
    assert (custom.train_for("mnist").lr, custom.train_for("mnist").batch_size) == (0.05, 128)
    assert custom.train_for("mnist").epochs == 50


def test_dataset_defaults() -> None:
    raw = _with("datasets.plain", {})
    spec = parse_params(raw).dataset("plain")
    assert (spec.source, spec.distortion, spec.seed, spec.validation, spec.normalization) == (
        "mnist",
        None,
        0,
        5000,
        None,
    )


def test_params_file_problems(tmp_path) -> None:
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("train: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("- a list\n")
    with pytest.raises(ParamsError, match="expected a mapping"):
        load_params(tmp_path / "params.yaml")


def test_extra_seeds_add_runs_for_their_variants_only() -> None:
    extra = {"variants": ["stn-conv", "stn-loclr"], "seeds": [3, 4]}
    study = parse_params(_with("studies.distorted.extra_seeds", extra)).studies.distorted
    assert study.seeds_for("stn-conv") == study.seeds_for("stn-loclr") == [0, 1, 2, 3, 4]
    assert study.seeds_for("cnn") == [0, 1, 2]
    no_extra = parse_params(
        _with("studies.distorted.extra_seeds", {"variants": [], "seeds": []})
    ).studies.distorted
    assert no_extra.seeds_for("stn-conv") == [0, 1, 2]


def test_the_distorted_study_states_its_extra_seeds() -> None:
    """dvc.yaml's extra-seed stages read the key, so leaving it out is an error here, not in DVC."""
    params = copy.deepcopy(DEFAULT)
    del params["studies"]["distorted"]["extra_seeds"]
    with pytest.raises(ParamsError, match=r"studies.distorted: .*extra_seeds: required"):
        parse_params(params)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("train: &budget\n  epochs: 3\ndatasets:\n  rot:\n    train: *budget\n", 1, "anchor &budget"),
        ("a: 1\nb: [1, *x]\n", 2, "alias *x"),
        ("train:\n  <<: {epochs: 3}\n", 2, "merge key <<"),
    ],
)
def test_params_file_rejects_anchors_aliases_and_merge_keys(tmp_path, text: str, line: int, what: str):
    """An alias shares its anchor's mapping in DVC's round trip, so `dvc exp run -S` on one
    place would edit every place or none: such files are refused, naming the line."""
    path = tmp_path / "params.yaml"
    path.write_text(text)
    for load in (load_params, load_run_params):
        with pytest.raises(ParamsError) as info:
            load(path=path)
        message = str(info.value)
        assert message.startswith(f"{path}:{line}: {what}: ") and "dvc" in message.lower()


def test_the_project_params_have_no_anchors() -> None:
    text = (ROOT / "params.yaml").read_text()
    assert "&" not in text.split("#")[0] and load_params(ROOT / "params.yaml")


def test_run_params_read_only_the_runs_own_entries(tmp_path) -> None:
    """A run's stages check its own dataset and variant, not the study sections or other entries."""
    raw = copy.deepcopy(DEFAULT)
    raw["studies"]["distorted"]["seedz"] = [0]  # a study-level mistake: the report stages' to find
    raw["variants"]["stn-ic"]["layr"] = "conv"  # another variant's mistake: its own stages' to find
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = load_run_params("rts", "stn-conv", path=path)
    assert list(run.datasets) == ["rts"] and list(run.variants) == ["stn-conv"]
    assert run.train_for("rts").momentum == 0.5 and run.variant("stn-conv").output_size == (28, 28)
    with pytest.raises(ParamsError, match=r"variants.stn-ic.layr: unknown key \(did you mean 'layer'\?\)"):
        load_run_params("rts", "stn-ic", path=path)
    with pytest.raises(ParamsError, match=r"studies.distorted.seedz: unknown key"):
        load_params(path)  # the first stage's check: the whole file
    with pytest.raises(ParamsError, match=r"variants.stn-cnv: not defined \(did you mean 'stn-conv'\?\)"):
        load_run_params("rts", "stn-cnv", path=path)
