"""MNIST as a named pipeline output: fetch, validate, store, load.

The download stage turns the four IDX .gz files into `<dataset dir>/{train,test}.npz`
(uint8 images N x 28 x 28 and labels N). Every later stage reads only those.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import urllib.error
from pathlib import Path

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity, download_url

from stn.errors import DataError
from stn.idx import check_mnist_pair, encode_idx, read_idx_gz

# split -> (images file, labels file), as named on every MNIST mirror.
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MIRROR_ENV = "MNIST_MIRROR"


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def fetch_raw(download_dir: Path, mirror: str | None, timeout: float = 60.0) -> Path:
    """Return the folder holding the four .gz files, downloading them if needed.

    mirror None: the public mirrors torchvision knows, each file md5-checked.
    mirror http(s)://...: that mirror only, md5-checked against torchvision's list.
    mirror a folder: read in place; such copies (like the offline one) need not match the
    official md5s, so they are checked by structure in `prepare_mnist` instead.
    """
    if mirror is not None and not _is_url(mirror):
        folder = Path(mirror)
        if not folder.is_dir():
            raise DataError(
                f"{MIRROR_ENV}={mirror}: not a folder; point it at a folder holding the four "
                "MNIST .gz files, or unset it to download from the public mirrors"
            )
        for filename, _md5 in MNIST.resources:
            if not (folder / filename).is_file():
                raise DataError(
                    f"{folder / filename}: file not found in the local mirror {MIRROR_ENV}={mirror}; "
                    "put the four MNIST .gz files there"
                )
        return folder

    download_dir.mkdir(parents=True, exist_ok=True)
    mirrors = [mirror if mirror.endswith("/") else mirror + "/"] if mirror else MNIST.mirrors
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # torchvision's download has no timeout of its own
    try:
        for filename, md5 in MNIST.resources:
            failures = []
            for base in mirrors:
                try:
                    download_url(base + filename, str(download_dir), filename, md5)
                    break
                except (urllib.error.URLError, OSError, RuntimeError) as exc:
                    reason = exc
                    path = download_dir / filename
                    if path.is_file() and not check_integrity(str(path), md5):
                        reason = f"md5 checksum mismatch (expected {md5})"
                        path.unlink()
                    failures.append(f"{base}{filename}: {reason}")
            else:
                raise DataError(
                    f"could not download {filename}: "
                    + "; ".join(failures)
                    + f". Check the network, or set {MIRROR_ENV} to a folder holding the MNIST .gz files"
                )
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return download_dir


# sha256 of the decompressed training images of the offline copy this project's CI uses
# (rebuilt from PNGs; pixels differ from the official file by at most one grey level).
OFFLINE_COPY_TRAIN_IMAGES_SHA256 = "374ba378bee06c633f4800ac6a495f71d1b80b0e82bf763acbfa4c7e9c379f75"


def _read_checked(folder: Path, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = (folder / name for name in MNIST_FILES[split])
    try:
        images, labels = read_idx_gz(images_file), read_idx_gz(labels_file)
        check_mnist_pair(images, labels, count, str(images_file), str(labels_file))
    except DataError as exc:
        raise DataError(
            f"{exc}. Replace the file: download it again, or fix the copy in {MIRROR_ENV}; "
            "for a deliberate subset of MNIST set data.train_count / data.test_count"
        ) from None
    return images, labels


def prepare_mnist(out_dir: Path, counts: dict[str, int], mirror: str | None = None) -> dict:
    """Fetch, validate and store MNIST in `out_dir`, all or nothing; returns its provenance.

    Everything is built in a temporary folder beside `out_dir` and renamed into place
    only when every file passed its checks, so a failure leaves no partial output.
    The provenance names the source and the sha256 of each decompressed file.
    """
    provenance: dict = {
        "source": mirror or "public mirrors (torchvision's list, md5-checked)",
        "files": {},
    }
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}-") as tmp:
        source = fetch_raw(Path(tmp) / "raw", mirror)
        staged = Path(tmp) / "out"
        staged.mkdir()
        for split in MNIST_FILES:
            images, labels = _read_checked(source, split, counts[split])
            np.savez(staged / f"{split}.npz", images=images, labels=labels)
            for name, array in zip(MNIST_FILES[split], (images, labels), strict=True):
                digest = hashlib.sha256(encode_idx(array)).hexdigest()
                provenance["files"][name] = {"items": len(array), "sha256_decompressed": digest}
        if out_dir.exists():  # move the old output aside first, so a crash never leaves neither
            os.replace(out_dir, Path(tmp) / "old")
        os.replace(staged, out_dir)
    train_sha = provenance["files"][MNIST_FILES["train"][0]]["sha256_decompressed"]
    provenance["offline_copy"] = train_sha == OFFLINE_COPY_TRAIN_IMAGES_SHA256
    return provenance


def load_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 images (N, 28, 28) and labels (N,) of one stored split."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the download stage first (dvc repro download)")
    with np.load(path) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    check_mnist_pair(images, labels, len(labels), str(path), str(path))
    return images, labels
