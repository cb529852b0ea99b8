"""MNIST as a named pipeline output: fetch, validate, store, load.

The download stage turns the four IDX .gz files into `<dataset dir>/{train,test}.npz`
(uint8 images N x 28 x 28 and labels N). Every later stage reads only those.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
from pathlib import Path

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity, download_url

from stn.errors import DataError
from stn.idx import check_mnist_pair, read_idx_gz

# split -> (images file, labels file), as named on every MNIST mirror.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MIRROR_ENV = "MNIST_MIRROR"


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def fetch_raw(dest: Path, mirror: str | None) -> None:
    """Put the four .gz files into `dest`.

    mirror None: the public mirrors torchvision knows, each file md5-checked.
    mirror http(s)://...: that mirror only, md5-checked against torchvision's list.
    mirror a folder: copied as is; such copies (like the offline one) need not match the
    official md5s, so they are checked by structure in `prepare_mnist` instead.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if mirror is not None and not _is_url(mirror):
        folder = Path(mirror)
        if not folder.is_dir():
            raise DataError(
                f"{MIRROR_ENV}={mirror}: not a folder; point it at a folder holding the four "
                "MNIST .gz files, or unset it to download from the public mirrors"
            )
        for filename, _md5 in MNIST.resources:
            src = folder / filename
            if not src.is_file():
                raise DataError(f"{src}: file not found in the local mirror {MIRROR_ENV}={mirror}")
            shutil.copyfile(src, dest / filename)
        return

    mirrors = [mirror if mirror.endswith("/") else mirror + "/"] if mirror else MNIST.mirrors
    for filename, md5 in MNIST.resources:
        failures = []
        for base in mirrors:
            try:
                download_url(base + filename, str(dest), filename, md5)
                break
            except (urllib.error.URLError, OSError, RuntimeError) as exc:
                reason = exc
                if isinstance(exc, RuntimeError) or not check_integrity(str(dest / filename), md5):
                    if (dest / filename).is_file():
                        reason = f"md5 checksum mismatch (expected {md5})"
                        (dest / filename).unlink()
                failures.append(f"{base}{filename}: {reason}")
        else:
            raise DataError(
                f"could not download {filename}: "
                + "; ".join(failures)
                + f". Check the network, or set {MIRROR_ENV} to a folder holding the MNIST .gz files"
            )


def prepare_mnist(out_dir: Path, counts: dict[str, int], mirror: str | None = None) -> None:
    """Fetch, validate and store MNIST in `out_dir`, all or nothing.

    Everything is built in a temporary folder beside `out_dir` and renamed into place
    only when every file passed its checks, so a failure leaves no partial output.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        raw, staged = Path(tmp) / "raw", Path(tmp) / "out"
        fetch_raw(raw, mirror)
        staged.mkdir()
        for split, (images_file, labels_file) in MNIST_FILES.items():
            images = read_idx_gz(raw / images_file)
            labels = read_idx_gz(raw / labels_file)
            source = Path(mirror) if mirror and not _is_url(mirror) else raw
            check_mnist_pair(
                images, labels, counts[split], str(source / images_file), str(source / labels_file)
            )
            np.savez(staged / f"{split}.npz", images=images, labels=labels)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staged, out_dir)


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (N, 28, 28) and labels (N,) of one stored split."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the download stage first (dvc repro download)")
    with np.load(path) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    check_mnist_pair(images, labels, len(labels), str(path), str(path))
    return images, labels
