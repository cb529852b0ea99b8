"""A prepared dataset on disk: plain .npy arrays per split and a meta.json beside them.

Plain .npy files, because their bytes depend only on the arrays (a .npz is a zip whose
headers differ between Python versions), so a prepared dataset is byte-identical on every
machine and DVC finds the stages that read it up to date.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stn.datasets.normalization import Normalization
from stn.errors import DataError

META = "meta.json"


def array_path(folder: Path, split: str, kind: str) -> Path:
    return Path(folder) / f"{split}-{kind}.npy"


def save_arrays(folder: Path, split: str, images: np.ndarray, labels: np.ndarray) -> dict[str, str]:
    """Write one split; returns {file name: sha256 of its bytes}."""
    hashes = {}
    for kind, array in (("images", images), ("labels", labels)):
        path = array_path(folder, split, kind)
        np.save(path, np.ascontiguousarray(array, dtype=np.uint8), allow_pickle=False)
        hashes[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def content_hash(file_hashes: dict[str, str]) -> str:
    """One hash for a whole dataset, from its files' hashes in name order."""
    blob = "".join(f"{name}:{digest}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(blob.encode()).hexdigest()


@contextmanager
def staged_folder(out_dir: Path) -> Iterator[Path]:
    """A temporary folder beside `out_dir` that replaces it only if the block succeeds."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        staged = Path(tmp) / "out"
        staged.mkdir()
        yield staged
        if out_dir.exists():  # move the old output aside first, so a crash never leaves neither
            os.replace(out_dir, Path(tmp) / "old")
        os.replace(staged, out_dir)


def write_meta(folder: Path, meta: dict) -> None:
    (Path(folder) / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class DatasetMeta:
    """What every stage after `prepare` needs to know of a dataset, instead of constants."""

    name: str
    size: tuple[int, int]
    classes: int
    normalization: Normalization
    counts: dict[str, int]
    content_sha256: str
    raw: dict


def read_meta(folder: Path) -> DatasetMeta:
    path = Path(folder) / META
    if not path.is_file():
        raise DataError(
            f"{path}: not found; prepare the dataset first (dvc repro prepare@{Path(folder).name})"
        )
    raw = json.loads(path.read_text())
    return DatasetMeta(
        name=raw["name"],
        size=tuple(raw["image_size"]),
        classes=int(raw["classes"]),
        normalization=Normalization(**raw["normalization"]),
        counts=dict(raw["counts"]),
        content_sha256=raw["content_sha256"],
        raw=raw,
    )


def load_arrays(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (N, H, W) and labels (N,) of one stored split, checked."""
    paths = [array_path(folder, split, kind) for kind in ("images", "labels")]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{path}: not found; run the pipeline's data stages first (dvc repro)")
    images, labels = (np.load(p, allow_pickle=False) for p in paths)
    if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"{paths[0]}: expected uint8 images (N, H, W) and N labels, "
            f"got {images.dtype} {images.shape} and {labels.shape}; prepare the dataset again"
        )
    return images, labels
