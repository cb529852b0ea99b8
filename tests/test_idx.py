"""The IDX reader and the MNIST structure checks, including fuzzed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stn.datasets.idx import check_mnist_pair, encode_idx, parse_idx, read_idx_gz, write_idx_gz
from stn.errors import DataError


def test_round_trip(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    write_idx_gz(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx_gz(tmp_path / "x.gz"), images)
    assert encode_idx(images)[:4] == b"\x00\x00\x08\x03"


def test_real_header_layout() -> None:
    data = b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 9])
    np.testing.assert_array_equal(parse_idx(data), [1, 2, 9])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x12\x34\x08\x01" + bytes(8), "bad IDX magic number 0x12340801"),
        (b"\x00\x00\x0d\x01" + bytes(8), "bad IDX magic number"),  # float data, not ubyte
        (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "truncated IDX header"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(3), "truncated or has the wrong counts"),
        (b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + bytes(3), "truncated or has the wrong counts"),
    ],
)
def test_parse_errors(data: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        parse_idx(data, "some-file")
    assert str(info.value).startswith("some-file:")


def test_crafted_huge_dimensions() -> None:
    """Dimensions whose product overflows 64 bits must not slip past the size check."""
    data = b"\x00\x00\x08\x04" + (0x00010000).to_bytes(4, "big") * 4
    with pytest.raises(DataError, match="truncated or has the wrong counts"):
        parse_idx(data, "crafted")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_idx_gz(tmp_path / "nope.gz")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.gz").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_idx_gz(tmp_path / "empty.gz")


def test_empty_gzip_payload(tmp_path: Path) -> None:
    (tmp_path / "e.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(DataError, match="empty"):
        read_idx_gz(tmp_path / "e.gz")


def test_truncated_gzip(tmp_path: Path) -> None:
    write_idx_gz(tmp_path / "x.gz", np.zeros((10, 28, 28), np.uint8))
    blob = (tmp_path / "x.gz").read_bytes()
    (tmp_path / "x.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_idx_gz(tmp_path / "x.gz")


def test_not_gzip(tmp_path: Path) -> None:
    (tmp_path / "x.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip file"):
        read_idx_gz(tmp_path / "x.gz")


def _pair(n_images: int = 4, n_labels: int = 4, shape=(28, 28)) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n_images, *shape), np.uint8), np.arange(n_labels, dtype=np.uint8) % 10


def test_check_pair_ok() -> None:
    check_mnist_pair(*_pair(), 4, "img", "lbl")


@pytest.mark.parametrize(
    ("pair", "count", "message"),
    [
        (_pair(shape=(28, 27)), 4, r"img: expected images of shape \(N, 28, 28\)"),
        (_pair(n_images=3), 4, "img: expected 4 images, found 3"),
        (_pair(n_labels=5), 4, "img: expected 4 images|lbl: expected 4 labels, found 5"),
        (_pair(), 5, "expected 5 images"),
    ],
)
def test_check_pair_errors(pair, count: int, message: str) -> None:
    with pytest.raises(DataError, match=message):
        check_mnist_pair(*pair, count, "img", "lbl")


def test_labels_out_of_range() -> None:
    images, labels = _pair()
    labels[2] = 12
    with pytest.raises(DataError, match="lbl: label 12 at index 2 is outside 0..9"):
        check_mnist_pair(images, labels, 4, "img", "lbl")


def test_labels_not_1d() -> None:
    with pytest.raises(DataError, match="1-D"):
        check_mnist_pair(np.zeros((4, 28, 28), np.uint8), np.zeros((4, 1), np.uint8), 4, "i", "l")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        array = parse_idx(data, "fuzz")
    except DataError as exc:
        assert str(exc).startswith("fuzz:")
    else:
        assert array.dtype == np.uint8 and array.size == len(data) - 4 - 4 * data[3]


@settings(max_examples=200, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
    cut=st.integers(0, 200),
    flip=st.integers(0, 200),
)
def test_fuzz_truncated_and_flipped(tmp_path_factory, shape: list[int], cut: int, flip: int) -> None:
    """Valid files, then truncated and bit-flipped, compressed or not: data or DataError only."""
    blob = bytearray(encode_idx(np.ones(shape, np.uint8)))
    if flip < len(blob):
        blob[flip] ^= 0xFF
    blob = bytes(blob[: max(0, len(blob) - cut)])
    try:
        array = parse_idx(blob, "fuzz")
        assert array.dtype == np.uint8
    except DataError:
        pass
    path = tmp_path_factory.mktemp("fz") / "f.gz"
    gz = gzip.compress(blob)
    path.write_bytes(gz[: max(0, len(gz) - cut // 4)])
    try:
        read_idx_gz(path)
    except DataError as exc:
        assert str(path) in str(exc)
