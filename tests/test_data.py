"""Fetching MNIST: local mirror, HTTP mirror with md5 checks, every failure mode, provenance."""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import N_TEST, N_TRAIN, OFFLINE_MNIST, ROOT, mirror_spellings, tiny_params
from torchvision.datasets import MNIST

from stn.datasets.idx import write_idx_gz
from stn.datasets.mnist import MNIST_FILES, prepare_mnist, read_provenance
from stn.datasets.normalization import Normalization
from stn.datasets.prepare import prepare_dataset
from stn.datasets.store import content_hash, load_arrays, save_arrays
from stn.errors import DataError

COUNTS = {"train": N_TRAIN, "test": N_TEST}
RAW_FILES = ["test-images.npy", "test-labels.npy", "train-images.npy", "train-labels.npy"]


def _tiny_md5s(folder: Path) -> list[tuple[str, str]]:
    return [(name, hashlib.md5((folder / name).read_bytes()).hexdigest()) for name, _ in MNIST.resources]


def test_local_mirror(tiny_mirror: Path, tmp_path: Path) -> None:
    prepare_mnist(tmp_path / "mnist", COUNTS, str(tiny_mirror))
    images, labels = load_arrays(tmp_path / "mnist", "train")
    assert images.shape == (N_TRAIN, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (N_TRAIN,) and labels.max() <= 9
    assert load_arrays(tmp_path / "mnist", "test")[0].shape == (N_TEST, 28, 28)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == ["provenance.json", *RAW_FILES]


def test_http_mirror_with_md5(tiny_mirror: Path, http_mirror: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(MNIST, "resources", _tiny_md5s(tiny_mirror))
    provenance = prepare_mnist(tmp_path / "mnist", COUNTS, http_mirror)
    assert load_arrays(tmp_path / "mnist", "train")[0].shape == (N_TRAIN, 28, 28)
    # Files that match torchvision's md5 list (here patched to the tiny files') count as official.
    assert provenance["identity"] == "official" and provenance["official_mnist"] is True


def test_checksum_mismatch(http_mirror: str, tmp_path: Path, monkeypatch) -> None:
    # The public mirrors are md5-checked: here the tiny files stand in for a mirror serving
    # something else than torchvision's md5 list says.
    monkeypatch.setattr(MNIST, "mirrors", [http_mirror])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: md5 checksum mismatch") as info:
        prepare_mnist(tmp_path / "mnist", COUNTS, None)
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
    before = {name: (out / name).read_bytes() for name in ["provenance.json", *RAW_FILES]}
    _damage(mirror_copy, "t10k-labels-idx1-ubyte.gz", "truncated")
    with pytest.raises(DataError):
        prepare_mnist(out, COUNTS, str(mirror_copy))
    assert {name: (out / name).read_bytes() for name in before} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def test_load_arrays_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="train-images.npy: not found; run the pipeline's data stages first"):
        load_arrays(tmp_path, "train")


def test_read_provenance_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="provenance.json: not found; run the download stage first"):
        read_provenance(tmp_path)


def test_load_arrays_rejects_wrong_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "train-images.npy", np.zeros((3, 28, 28), np.float32))
    np.save(tmp_path / "train-labels.npy", np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"expected uint8 images \(N, H, W\) and N labels"):
        load_arrays(tmp_path, "train")


def test_stage_reports_error_without_traceback(mirror_copy: Path, tmp_path: Path) -> None:
    """The download stage as DVC runs it: exit 1, one 'error:' line naming file and remedy."""
    _damage(mirror_copy, "train-labels-idx1-ubyte.gz", "truncated")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
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
    assert not (tmp_path / "data" / "raw" / "mnist").exists()
    assert not (tmp_path / "reports").exists()


def test_provenance_gives_hashes_not_the_source(tiny_mirror: Path, tmp_path: Path) -> None:
    provenance = prepare_mnist(tmp_path / "mnist", COUNTS, str(tiny_mirror))
    assert "source" not in provenance and provenance["official_mnist"] is False
    assert str(tiny_mirror) not in (tmp_path / "mnist" / "provenance.json").read_text()
    entry = provenance["files"]["t10k-labels-idx1-ubyte.gz"]
    raw = gzip.decompress((tiny_mirror / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert entry == {"items": N_TEST, "sha256_decompressed": hashlib.sha256(raw).hexdigest()}
    assert read_provenance(tmp_path / "mnist") == provenance  # the same record, on disk


def test_other_content_is_not_called_mnist(tiny_mirror: Path, tmp_path: Path) -> None:
    """Valid IDX files of other content (here a subset) are reported as unknown, never as MNIST."""
    provenance = prepare_mnist(tmp_path / "mnist", COUNTS, str(tiny_mirror))
    assert provenance["identity"] == "unknown" and provenance["official_mnist"] is False
    assert provenance["note"].startswith("NOT the official MNIST")
    for names in MNIST_FILES.values():  # every file differs from the official one: all are named
        assert all(name in provenance["note"] for name in names)


@pytest.mark.skipif(
    not (OFFLINE_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(), reason="no offline MNIST copy here"
)
def test_offline_copy_is_identified(tmp_path: Path) -> None:
    provenance = prepare_mnist(tmp_path / "mnist", {"train": 60000, "test": 10000}, str(OFFLINE_MNIST))
    assert provenance["identity"] == "offline-copy" and provenance["official_mnist"] is False
    assert provenance["note"].startswith("the offline copy")
    assert provenance["files"]["train-images-idx3-ubyte.gz"]["items"] == 60000


def test_prepared_data_is_byte_stable(tiny_mirror: Path, tmp_path: Path) -> None:
    """Download + prepare twice: the same bytes in every file (DVC then sees nothing changed)."""
    folders = []
    for attempt in ("a", "b"):
        raw, out = tmp_path / attempt / "raw", tmp_path / attempt / "mnist"
        prepare_mnist(raw, COUNTS, str(tiny_mirror))
        prepare_dataset("mnist", raw, out, None, 0, 0, Normalization(0.1307, 0.3081))
        folders += [raw, out]
    for first, second in zip(folders[0:2], folders[2:4], strict=True):
        names = sorted(p.name for p in first.iterdir())
        assert names == sorted(p.name for p in second.iterdir())
        for name in names:
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_stored_array_bytes_are_pinned(tmp_path: Path) -> None:
    """The .npy bytes of a fixed array: a change of format (numpy, dtype, layout) shows up here."""
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    hashes = save_arrays(tmp_path, "train", np.asfortranarray(images), labels.astype(np.int64))
    assert hashes == {
        "train-images.npy": "8d39dff63dd096ac9827cde6be89c76348021eeb3b0bd2b696d9f79b724592db",
        "train-labels.npy": "6c7477ccb797cfec99f2c7020c2f714e89e54257d154c209a69ecd2c1cda7b07",
    }
    for name, digest in hashes.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert (tmp_path / "train-labels.npy").read_bytes()[:10] == b"\x93NUMPY\x01\x00v\x00"
    assert content_hash(hashes) == content_hash(dict(reversed(hashes.items())))  # order-free


def test_the_same_bytes_however_the_mirror_is_spelled(
    tiny_mirror: Path, http_mirror: str, tmp_path: Path, monkeypatch
) -> None:
    """Relative, absolute, trailing slash, a symlink, file:// and http://: one output, byte for
    byte, so DVC records one hash and no later stage reruns for a new spelling of the source."""
    monkeypatch.chdir(tmp_path)
    spellings = mirror_spellings(tiny_mirror, tmp_path, http_mirror, tmp_path / "link")
    outputs = set()
    for i, spelling in enumerate(spellings):
        prepare_mnist(tmp_path / f"out{i}", COUNTS, spelling)
        files = sorted((tmp_path / f"out{i}").iterdir())
        outputs.add(tuple((f.name, f.read_bytes()) for f in files))
    assert len(outputs) == 1
