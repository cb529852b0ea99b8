"""What one training run reads: its dataset's training split, and for augmentation its source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stn.datasets.prepare import augment_rng, training_part
from stn.datasets.store import DatasetMeta, load_arrays, read_meta
from stn.errors import DataError
from stn.params.run import DatasetSpec
from stn.training.loop import EpochImages
from stn.variant import VariantSpec


def load_training_data(folder: Path) -> tuple[DatasetMeta, np.ndarray, np.ndarray]:
    meta = read_meta(folder)
    images, labels = load_arrays(folder, "train")
    if images.shape[1:] != meta.size:
        raise DataError(f"{folder}: images are {images.shape[1:]}, meta.json says {meta.size}; prepare again")
    return meta, images, labels


def epoch_images_for(
    spec: VariantSpec, dataset: DatasetSpec, raw_dir: Path, meta: DatasetMeta, seed: int
) -> EpochImages | None:
    """For an augmenting variant: a fresh distortion of the source's training part per epoch.

    The same source images as the dataset's training split (its validation images stay
    out), re-distorted from a stream of (run seed, epoch), so a resumed run re-draws the
    same images.
    """
    if not spec.augment:
        return None
    if dataset.distortion is None:
        raise DataError(f"{meta.name}: variant re-draws the distortion, but the dataset has none")
    source_images, source_labels = load_arrays(raw_dir, "train")
    train_part, _ = training_part(source_images, source_labels, dataset.validation)
    upright = source_images[train_part]
    distortion = dataset.distortion
    return lambda epoch: distortion.apply(upright, augment_rng(seed, epoch))
