"""Fetching MNIST: local mirror, HTTP mirror with md5 checks, and every failure mode."""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import N_TEST, N_TRAIN, ROOT
from torchvision.datasets import MNIST

from stn.data import load_split, prepare_mnist
from stn.errors import DataError
from stn.idx import write_idx_gz

COUNTS = {"train": N_TRAIN, "test": N_TEST}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_mirror(tiny_mirror: Path):
    """Serve the tiny mirror on 127.0.0.1 for the length of one test."""
    handler = functools.partial(_QuietHandler, directory=str(tiny_mirror))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _tiny_md5s(folder: Path) -> list[tuple[str, str]]:
    return [(name, hashlib.md5((folder / name).read_bytes()).hexdigest()) for name, _ in MNIST.resources]


def test_local_mirror(tiny_mirror: Path, tmp_path: Path) -> None:
    prepare_mnist(tmp_path / "mnist", COUNTS, str(tiny_mirror))
    images, labels = load_split(tmp_path / "mnist", "train")
    assert images.shape == (N_TRAIN, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (N_TRAIN,) and labels.max() <= 9
    assert load_split(tmp_path / "mnist", "test")[0].shape == (N_TEST, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["test.npz", "train.npz"]


def test_http_mirror_with_md5(tiny_mirror: Path, http_mirror: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(MNIST, "resources", _tiny_md5s(tiny_mirror))
    prepare_mnist(tmp_path / "mnist", COUNTS, http_mirror)
    assert load_split(tmp_path / "mnist", "train")[0].shape == (N_TRAIN, 28, 28)


def test_checksum_mismatch(http_mirror: str, tmp_path: Path) -> None:
    # The tiny files cannot match torchvision's md5 list for the real MNIST.
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: md5 checksum mismatch") as info:
        prepare_mnist(tmp_path / "mnist", COUNTS, http_mirror)
    assert "MNIST_MIRROR" in str(info.value)
    assert not (tmp_path / "mnist").exists()


def test_unreachable_mirror(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(
        DataError, match=f"could not download train-images-idx3-ubyte.gz: http://127.0.0.1:{port}/"
    ):
        prepare_mnist(tmp_path / "mnist", COUNTS, f"http://127.0.0.1:{port}/")
    assert not (tmp_path / "mnist").exists()


def test_mirror_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        prepare_mnist(tmp_path / "mnist", COUNTS, str(tmp_path / "nowhere"))


def _damage(folder: Path, name: str, how: str) -> None:
    path = folder / name
    if how == "missing":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif how == "magic":
        raw = bytearray(gzip.decompress(path.read_bytes()))
        raw[2] = 0x0B
        path.write_bytes(gzip.compress(bytes(raw)))
    elif how == "labels":
        write_idx_gz(path, np.full(N_TEST, 10, np.uint8))
    elif how == "count":
        write_idx_gz(path, np.zeros(N_TEST - 1, np.uint8))


@pytest.mark.parametrize(
    ("name", "how", "message"),
    [
        ("train-images-idx3-ubyte.gz", "missing", "file not found"),
        ("train-labels-idx1-ubyte.gz", "empty", "empty"),
        ("t10k-images-idx3-ubyte.gz", "truncated", "truncated or corrupt"),
        ("t10k-images-idx3-ubyte.gz", "magic", "bad IDX magic number 0x00000b03"),
        ("t10k-labels-idx1-ubyte.gz", "labels", "label 10 at index 0 is outside 0..9"),
        ("t10k-labels-idx1-ubyte.gz", "count", f"expected {N_TEST} labels, found {N_TEST - 1}"),
    ],
)
def test_bad_files(mirror_copy: Path, tmp_path: Path, name: str, how: str, message: str) -> None:
    out = tmp_path / "out" / "mnist"
    _damage(mirror_copy, name, how)
    with pytest.raises(DataError, match=message) as info:
        prepare_mnist(out, COUNTS, str(mirror_copy))
    assert name in str(info.value)
    assert not out.exists() and list(out.parent.iterdir()) == []  # nothing half-written


def test_wrong_expected_count(tiny_mirror: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"expected 60000 images, found {N_TRAIN}"):
        prepare_mnist(tmp_path / "mnist", {"train": 60000, "test": N_TEST}, str(tiny_mirror))


def test_failed_refresh_keeps_old_output(tiny_mirror: Path, mirror_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "mnist"
    prepare_mnist(out, COUNTS, str(tiny_mirror))
    before = (out / "train.npz").read_bytes()
    _damage(mirror_copy, "t10k-labels-idx1-ubyte.gz", "truncated")
    with pytest.raises(DataError):
        prepare_mnist(out, COUNTS, str(mirror_copy))
    assert (out / "train.npz").read_bytes() == before


def test_load_split_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run the download stage first"):
        load_split(tmp_path, "train")


def test_stage_reports_error_without_traceback(mirror_copy: Path, tmp_path: Path) -> None:
    """The download stage as DVC runs it: exit 1, one 'error:' line naming file and remedy."""
    _damage(mirror_copy, "train-labels-idx1-ubyte.gz", "truncated")
    (tmp_path / "params.yaml").write_text(
        f"data: {{train_count: {N_TRAIN}, test_count: {N_TEST}}}\nvariants: {{stn-conv: {{}}}}\n"
    )
    env = {**os.environ, "MNIST_MIRROR": str(mirror_copy)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "download.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "train-labels-idx1-ubyte.gz" in result.stderr
    assert not (tmp_path / "data" / "mnist").exists()


def test_provenance_names_source_and_hashes(tiny_mirror: Path, tmp_path: Path) -> None:
    provenance = prepare_mnist(tmp_path / "mnist", COUNTS, str(tiny_mirror))
    assert provenance["source"] == str(tiny_mirror) and provenance["offline_copy"] is False
    entry = provenance["files"]["t10k-labels-idx1-ubyte.gz"]
    raw = gzip.decompress((tiny_mirror / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert entry == {"items": N_TEST, "sha256_decompressed": hashlib.sha256(raw).hexdigest()}
