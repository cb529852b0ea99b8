"""MNIST as a named pipeline output: fetch, validate, store, load.

The download stage turns the four IDX .gz files into plain .npy arrays (uint8 images
N x 28 x 28 and labels N) with a provenance record; the datasets are prepared from those.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tempfile
import urllib.error
from pathlib import Path

import numpy as np
from torchvision.datasets import MNIST
from torchvision.datasets.utils import check_integrity, download_url

from stn.datasets.idx import check_mnist_pair, encode_idx, read_idx_gz
from stn.datasets.store import save_arrays, staged_folder
from stn.errors import DataError

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
    mirror http(s)://...: that mirror only; a folder (or file://...): read in place. Such
    copies (like the offline one) need not match the official md5s, so they are checked by
    structure in `prepare_mnist` and identified by content in `identify` instead.
    Raises DataError when a file is missing or cannot be downloaded.
    """
    if mirror is not None and mirror.startswith("file://"):
        mirror = mirror.removeprefix("file://")
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
        for filename, official_md5 in MNIST.resources:
            md5 = None if mirror else official_md5  # a chosen mirror is identified by content instead
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


# sha256 of the decompressed files. The official test files and training labels are the
# ones the offline copy holds too (its README: byte-identical after decompression); its
# training images were rebuilt from PNGs (every pixel within one grey level of the official).
OFFICIAL_SHA256 = {
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
OFFLINE_COPY_SHA256 = OFFICIAL_SHA256 | {
    "train-images-idx3-ubyte.gz": "374ba378bee06c633f4800ac6a495f71d1b80b0e82bf763acbfa4c7e9c379f75",
}
OFFLINE_COPY_NOTE = (
    "the offline copy, whose test files and training labels are the original MNIST and whose "
    "training images were rebuilt from a PNG copy (every pixel within one grey level of the "
    "official file), so results on it match the official files to within training noise"
)


def identify(source: Path, digests: dict[str, str]) -> dict:
    """Which MNIST this is: the official files, the known offline copy, or something else.

    Official: every .gz matches torchvision's md5 list (as a download from the public mirrors
    must). Offline copy: every decompressed file matches its known sha256. Anything else is
    reported as not the official MNIST, naming the files whose content is unknown.
    """
    md5_ok = all(check_integrity(str(source / name), md5) for name, md5 in MNIST.resources)
    if md5_ok:
        return {
            "identity": "official",
            "official_mnist": True,
            "note": "the official MNIST files (md5-checked)",
        }
    if digests == OFFLINE_COPY_SHA256:
        return {"identity": "offline-copy", "official_mnist": False, "note": OFFLINE_COPY_NOTE}
    unknown = sorted(name for name, digest in digests.items() if OFFICIAL_SHA256.get(name) != digest)
    return {
        "identity": "unknown",
        "official_mnist": False,
        "note": (
            "NOT the official MNIST: the content of "
            + ", ".join(unknown)
            + " matches neither the official files nor the known offline copy "
            "(a subset, another dataset in MNIST's format, or a modified copy); results on it "
            "are not comparable with published MNIST numbers"
        ),
    }


def _read_checked(folder: Path, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
    images_file, labels_file = (folder / name for name in MNIST_FILES[split])
    try:
        images, labels = read_idx_gz(images_file), read_idx_gz(labels_file)
        check_mnist_pair(images, labels, count, str(images_file), str(labels_file))
    except DataError as exc:
        raise DataError(
            f"{exc}. Replace the file: download it again, or fix the copy in {MIRROR_ENV}; "
            "for a deliberate subset of MNIST set mnist.train_count / mnist.test_count"
        ) from None
    return images, labels


def prepare_mnist(out_dir: Path, counts: dict[str, int], mirror: str | None = None) -> dict:
    """Fetch, validate and store MNIST in `out_dir`, all or nothing; returns its provenance.

    The arrays go to `out_dir/{train,test}-{images,labels}.npy`, built in a temporary folder
    and renamed into place only when every file passed its checks, so a failure leaves no
    partial output. The provenance gives the sha256 of each decompressed file,
    and whether this is the official MNIST; it is also written to `out_dir/provenance.json`.
    Where the files came from (a path or URL) is not part of it: the same bytes give the same
    output however the source was spelled, so no later stage reruns for a new spelling.
    """
    provenance: dict = {"files": {}}
    digests = {}
    with (
        tempfile.TemporaryDirectory(prefix="mnist-download-") as download_dir,
        staged_folder(out_dir) as staged,
    ):
        source = fetch_raw(Path(download_dir), mirror)
        for split in MNIST_FILES:
            images, labels = _read_checked(source, split, counts[split])
            save_arrays(staged, split, images, labels)
            for name, array in zip(MNIST_FILES[split], (images, labels), strict=True):
                digests[name] = hashlib.sha256(encode_idx(array)).hexdigest()
                provenance["files"][name] = {"items": len(array), "sha256_decompressed": digests[name]}
        provenance |= identify(source, digests)
        (staged / "provenance.json").write_text(json.dumps(provenance, indent=2, sort_keys=True) + "\n")
    return provenance


def read_provenance(raw_dir: Path) -> dict:
    path = Path(raw_dir) / "provenance.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the download stage first (dvc repro download)")
    return json.loads(path.read_text())
