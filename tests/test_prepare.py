"""prepare@NAME on the tiny mirror: shapes, splits, meta.json, determinism, independent streams."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import N_TEST, N_TRAIN, ROOT

from stn.datasets.mnist import prepare_mnist
from stn.datasets.normalization import Normalization
from stn.datasets.prepare import prepare_dataset, split_rng
from stn.datasets.store import content_hash, load_arrays, read_meta
from stn.datasets.warp import rotate
from stn.errors import DataError
from stn.models.builder import InputShape, build_model
from stn.params.study import DatasetSpec, load_params
from stn.training.runs import epoch_images_for, load_training_data

PARAMS = load_params(ROOT / "params.yaml")
VALIDATION = 64  # the datasets' 5000 do not fit the tiny mirror's N_TRAIN images
SIZES = {"mnist": (28, 28), "rot": (28, 28), "rts": (42, 42), "proj": (28, 28), "elastic": (28, 28)}
SPLITS = ("train", "val", "test")


def _spec(name: str) -> DatasetSpec:
    spec = PARAMS.dataset(name)
    return spec if spec.validation == 0 else spec.model_copy(update={"validation": VALIDATION})


def _prepare(name: str, raw: Path, out: Path) -> dict:
    spec = _spec(name)
    norm = Normalization(**spec.normalization.model_dump()) if spec.normalization else None
    return prepare_dataset(name, raw, out, spec.distortion, spec.seed, spec.validation, norm)


@pytest.fixture(scope="module")
def raw(tiny_mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("raw") / "mnist"
    prepare_mnist(folder, {"train": N_TRAIN, "test": N_TEST}, str(tiny_mirror))
    return folder


@pytest.fixture(scope="module")
def prepared(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every dataset of params.yaml, prepared from the tiny mirror (validation cut to 64)."""
    data = tmp_path_factory.mktemp("data")
    for name in PARAMS.datasets:
        _prepare(name, raw, data / name)
    return {name: data / name for name in PARAMS.datasets}


def test_params_yaml_has_the_expected_datasets() -> None:
    assert set(PARAMS.datasets) == set(SIZES)


@pytest.mark.parametrize("name", sorted(SIZES))
def test_shapes_and_counts(prepared: dict[str, Path], name: str) -> None:
    folder = prepared[name]
    validation = _spec(name).validation
    expected = {"train": N_TRAIN - validation, "val": validation, "test": N_TEST}
    for split in SPLITS:
        images, labels = load_arrays(folder, split)
        assert images.shape == (expected[split], *SIZES[name]) and images.dtype == np.uint8
        assert labels.shape == (expected[split],) and labels.dtype == np.uint8
    meta = read_meta(folder)
    assert meta.size == SIZES[name] and meta.counts == expected and meta.classes == 10
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["meta.json"] + [f"{split}-{kind}.npy" for split in SPLITS for kind in ("images", "labels")]
    )


@pytest.mark.parametrize("name", ["rot", "rts"])
def test_labels_are_the_sources(prepared: dict[str, Path], raw: Path, name: str) -> None:
    """Distortion moves pixels only: labels are the source's, train then val in source order."""
    source_train, source_test = load_arrays(raw, "train")[1], load_arrays(raw, "test")[1]
    train, val = load_arrays(prepared[name], "train")[1], load_arrays(prepared[name], "val")[1]
    np.testing.assert_array_equal(np.concatenate([train, val]), source_train)
    np.testing.assert_array_equal(load_arrays(prepared[name], "test")[1], source_test)


@pytest.mark.parametrize("name", ["rot", "rts"])
def test_meta_json(prepared: dict[str, Path], name: str) -> None:
    folder = prepared[name]
    raw_meta = json.loads((folder / "meta.json").read_text())
    spec = _spec(name)
    assert raw_meta["name"] == name and raw_meta["source"] == "mnist"
    assert raw_meta["source_identity"] == "unknown"  # the tiny mirror is not MNIST
    assert raw_meta["source_note"].startswith("NOT the official MNIST")
    assert raw_meta["distortion"] == spec.distortion.model_dump() and raw_meta["seed"] == spec.seed
    assert raw_meta["image_size"] == list(SIZES[name]) and raw_meta["classes"] == 10
    # The normalisation: computed on this dataset's own (distorted) training split.
    train_images = load_arrays(folder, "train")[0]
    meta = read_meta(folder)
    assert meta.normalization == Normalization.of(train_images)
    assert raw_meta["normalization"] == {"mean": meta.normalization.mean, "std": meta.normalization.std}
    assert InputShape.of(meta) == InputShape(
        size=SIZES[name], classes=10, background=meta.normalization.background
    )
    # The content hash: of the files' own bytes, all six of them.
    hashes = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.npy")}
    assert raw_meta["files_sha256"] == hashes and len(hashes) == 6
    assert meta.content_sha256 == content_hash(hashes)


def test_fixed_normalization_and_validation_from_the_end(prepared: dict[str, Path], raw: Path) -> None:
    """mnist: the tutorial's constants as given, the last training images held out, no warp."""
    meta = read_meta(prepared["mnist"])
    assert meta.normalization == Normalization(0.1307, 0.3081) and meta.raw["distortion"] is None
    assert meta.counts == {"train": N_TRAIN - 64, "val": 64, "test": N_TEST}
    train, test = load_arrays(raw, "train")[0], load_arrays(raw, "test")[0]
    np.testing.assert_array_equal(load_arrays(prepared["mnist"], "train")[0], train[:-64])
    np.testing.assert_array_equal(load_arrays(prepared["mnist"], "val")[0], train[-64:])
    np.testing.assert_array_equal(load_arrays(prepared["mnist"], "test")[0], test)


def test_no_validation_keeps_every_training_image(raw: Path, tmp_path: Path) -> None:
    """validation 0, the original study's protocol: all training images, an empty val split."""
    prepare_dataset("mnist", raw, tmp_path / "mnist", None, 0, 0, Normalization(0.1307, 0.3081))
    assert read_meta(tmp_path / "mnist").counts == {"train": N_TRAIN, "val": 0, "test": N_TEST}
    np.testing.assert_array_equal(load_arrays(tmp_path / "mnist", "train")[0], load_arrays(raw, "train")[0])


def test_content_hashes_tell_datasets_apart(prepared: dict[str, Path]) -> None:
    hashes = [read_meta(folder).content_sha256 for folder in prepared.values()]
    assert len(set(hashes)) == len(hashes)


@pytest.mark.parametrize("name", ["rot", "rts"])
def test_deterministic(prepared: dict[str, Path], raw: Path, tmp_path: Path, name: str) -> None:
    again = tmp_path / name
    _prepare(name, raw, again)
    names = sorted(p.name for p in prepared[name].iterdir())
    assert names == sorted(p.name for p in again.iterdir())
    for file in names:
        assert (again / file).read_bytes() == (prepared[name] / file).read_bytes(), file


def _first_angle(seed: int, split: str, count: int, max_degrees: float) -> float:
    """The angle `rot` gives a split's first image: the first of its vectorised uniform draws."""
    return float(split_rng(seed, split).uniform(-max_degrees, max_degrees, size=count)[0])


def _first_sources(raw: Path, validation: int) -> dict[str, np.ndarray]:
    train, test = load_arrays(raw, "train")[0], load_arrays(raw, "test")[0]
    return {"train": train[:1], "val": train[N_TRAIN - validation :][:1], "test": test[:1]}


def test_test_image_is_the_source_rotated_by_the_first_draw(prepared: dict[str, Path], raw: Path) -> None:
    spec = _spec("rot")
    angle = _first_angle(spec.seed, "test", N_TEST, spec.distortion.max_degrees)
    source = load_arrays(raw, "test")[0][:1]
    stored = load_arrays(prepared["rot"], "test")[0][:1]
    assert abs(angle) > 1  # a real rotation, so the check below means something
    np.testing.assert_array_equal(stored, rotate(source, angle))


def test_splits_are_distorted_independently(prepared: dict[str, Path], raw: Path) -> None:
    spec = _spec("rot")
    counts = read_meta(prepared["rot"]).counts
    angles = {
        split: _first_angle(spec.seed, split, counts[split], spec.distortion.max_degrees) for split in SPLITS
    }
    assert len({round(a, 6) for a in angles.values()}) == 3  # three streams, three different draws
    sources = _first_sources(raw, spec.validation)
    for split in SPLITS:
        stored = load_arrays(prepared["rot"], split)[0][:1]
        np.testing.assert_array_equal(stored, rotate(sources[split], angles[split]))
    # Had the test split used the train split's stream, its first image would be turned like train's.
    test_stored = load_arrays(prepared["rot"], "test")[0][:1]
    assert not np.array_equal(test_stored, rotate(sources["test"], angles["train"]))


def test_validation_too_large_is_an_error(raw: Path, tmp_path: Path) -> None:
    spec = PARAMS.dataset("rot")  # validation 5000, more than the tiny mirror holds
    with pytest.raises(DataError, match=f"validation: 5000 images asked for, .* has only {N_TRAIN}"):
        prepare_dataset("rot", raw, tmp_path / "rot", spec.distortion, spec.seed, spec.validation)
    assert not (tmp_path / "rot").exists()


@pytest.mark.parametrize("variant", sorted(PARAMS.variants))
def test_every_variant_fits_every_dataset(prepared: dict[str, Path], variant: str) -> None:
    spec = PARAMS.variant(variant)
    for name, folder in prepared.items():
        meta = read_meta(folder)
        torch.manual_seed(0)
        model = build_model(spec, InputShape.of(meta)).eval()
        images = load_arrays(folder, "test")[0][:4]
        with torch.inference_mode():
            x = meta.normalization(images)
            assert x.shape == (4, 1, *SIZES[name])
            out = model(x)
        assert out.shape == (4, 10), (variant, name)
        torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_augmentation_redraws_per_epoch(prepared: dict[str, Path], raw: Path) -> None:
    """cnn-aug: each epoch a fresh, reproducible distortion of the same source images."""
    meta, images, _ = load_training_data(prepared["rts"])
    redraw = epoch_images_for(PARAMS.variant("cnn-aug"), _spec("rts"), raw, meta, seed=0)
    first, second = redraw(1), redraw(2)
    assert first.shape == images.shape == (N_TRAIN - VALIDATION, 42, 42)
    assert not np.array_equal(first, second) and not np.array_equal(first, images)
    np.testing.assert_array_equal(redraw(1), first)
    assert epoch_images_for(PARAMS.variant("cnn"), _spec("rts"), raw, meta, seed=0) is None
