"""Reading and checking the IDX files MNIST ships in (http://yann.lecun.com/exdb/mnist/)."""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from stn.errors import DataError

# The third byte of an IDX magic number gives the element type; MNIST only uses unsigned bytes.
_UBYTE = 0x08


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode uncompressed IDX bytes into a uint8 array of the declared shape.

    Raises DataError (naming `name`) when the header or the payload size is wrong.
    """
    if len(data) < 4:
        raise DataError(f"{name}: file is {len(data)} bytes long, too short for an IDX header")
    zero1, zero2, dtype, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0 or dtype != _UBYTE or ndim == 0:
        raise DataError(
            f"{name}: bad IDX magic number 0x{data[:4].hex()} "
            "(expected 0x00000801 for labels or 0x00000803 for images)"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{name}: truncated IDX header ({len(data)} of {header_size} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape) + header_size  # Python ints: no overflow on crafted headers
    if len(data) != expected:
        raise DataError(
            f"{name}: header declares shape {shape} ({expected} bytes) "
            f"but the file holds {len(data)} bytes; it is truncated or has the wrong counts"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx_gz(path: Path) -> np.ndarray:
    """Decompress and parse one .gz IDX file, turning every failure into a DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc}); it is truncated or corrupt") from None
    if not data:
        raise DataError(f"{path}: file is empty")
    return parse_idx(data, str(path))


def check_mnist_pair(
    images: np.ndarray, labels: np.ndarray, count: int, images_name: str, labels_name: str
) -> None:
    """Check that images and labels form an MNIST split of `count` examples."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_name}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: expected a 1-D label file, got shape {labels.shape}")
    if len(images) != count:
        raise DataError(f"{images_name}: expected {count} images, found {len(images)}")
    if len(labels) != count:
        raise DataError(f"{labels_name}: expected {count} labels, found {len(labels)}")
    if labels.size and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DataError(f"{labels_name}: label {int(labels[bad])} at index {bad} is outside 0..9")


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes of a uint8 array (the inverse of parse_idx)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzip-compressed IDX file (e.g. a small or derived MNIST)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
        fh.write(encode_idx(array))
