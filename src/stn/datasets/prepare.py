"""prepare@NAME: a dataset from its source, its distortion and its validation split.

Everything later stages need to know about the dataset goes into meta.json beside the
arrays: image size, classes, split sizes, the normalisation (from its own training
split), the content hash, and where the source came from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stn.datasets.distortions.base import Distortion
from stn.datasets.mnist import read_provenance
from stn.datasets.normalization import Normalization
from stn.datasets.store import content_hash, load_arrays, save_arrays, staged_folder, write_meta
from stn.errors import DataError

# Each split draws its distortions from its own stream of the dataset's seed, so train,
# validation and test are distorted independently and reproducibly.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}
CLASSES = 10


def split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_STREAMS[split]])


def augment_rng(run_seed: int, epoch: int) -> np.random.Generator:
    """The stream a training run re-draws its distortions from in one epoch (cnn-aug)."""
    return np.random.default_rng([run_seed, epoch, 99])


def training_part(images: np.ndarray, labels: np.ndarray, validation: int) -> tuple[slice, slice]:
    """The source's training images split into (train, validation): the last N are validation."""
    if validation >= len(labels):
        raise DataError(
            f"validation: {validation} images asked for, but the training split has only {len(labels)}"
        )
    cut = len(labels) - validation
    return slice(0, cut), slice(cut, len(labels))


def prepare_dataset(
    name: str,
    raw_dir: Path,
    out_dir: Path,
    distortion: Distortion | None,
    seed: int,
    validation: int,
    normalization: Normalization | None = None,
) -> dict:
    """Write data/NAME (arrays + meta.json), all or nothing; returns the meta."""
    provenance = read_provenance(raw_dir)
    train_images, train_labels = load_arrays(raw_dir, "train")
    test_images, test_labels = load_arrays(raw_dir, "test")
    train_part, val_part = training_part(train_images, train_labels, validation)
    splits = {
        "train": (train_images[train_part], train_labels[train_part]),
        "val": (train_images[val_part], train_labels[val_part]),
        "test": (test_images, test_labels),
    }
    hashes: dict[str, str] = {}
    with staged_folder(out_dir) as staged:
        for split, (images, labels) in splits.items():
            if distortion is not None and len(images):
                images = distortion.apply(images, split_rng(seed, split))
            splits[split] = (images, labels)
            hashes |= save_arrays(staged, split, images, labels)
        norm = normalization or Normalization.of(splits["train"][0])
        meta = {
            "name": name,
            "source": "mnist",
            "source_identity": provenance["identity"],
            "source_note": provenance["note"],
            "distortion": distortion.model_dump() if distortion is not None else None,
            "seed": seed,
            "image_size": list(splits["test"][0].shape[1:]),
            "classes": CLASSES,
            "counts": {split: len(labels) for split, (_, labels) in splits.items()},
            "normalization": {"mean": norm.mean, "std": norm.std},
            "files_sha256": hashes,
            "content_sha256": content_hash(hashes),
        }
        write_meta(staged, meta)
    return meta
