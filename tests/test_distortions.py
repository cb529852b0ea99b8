"""The distortions of Jaderberg et al. (2015) on tiny synthetic images: shapes, determinism, conventions."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from stn.datasets.distortions.base import Distortion
from stn.datasets.distortions.elastic import Elastic, control_grid, eval_tps, fit_tps
from stn.datasets.distortions.proj import CORNERS, Projective, apply_homographies, fit_homographies
from stn.datasets.distortions.registry import DISTORTIONS, DistortionSpec, distort, parse_distortion
from stn.datasets.distortions.rot import Rotation
from stn.datasets.distortions.rts import RotationTranslationScale
from stn.datasets.warp import (
    affine_grid,
    pixel_grid,
    rotate,
    similarity_matrices,
    warp,
    warp_affine,
)

N = 16


def l_shapes(n: int = N, size: int = 28) -> np.ndarray:
    """Asymmetric "L" blobs at slightly different positions, with varied intensities (uint8)."""
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        r, c = 4 + i % 3, 6 + i % 4
        images[i, r : r + 16, c : c + 4] = 255
        images[i, r + 12 : r + 16, c : c + 12] = 120 + 8 * i
    return images


def gaussian_blob(size: int = 28, centre: tuple[float, float] = (0.0, 0.0), sigma: float = 3.0) -> np.ndarray:
    """One smooth blob, (1, size, size) uint8; ``centre`` is (dx, dy) in pixels from the image centre."""
    u = np.arange(size) + 0.5 - size / 2
    gx, gy = np.meshgrid(u - centre[0], u - centre[1], indexing="xy")
    return np.rint(255 * np.exp(-(gx**2 + gy**2) / (2 * sigma**2)))[None].astype(np.uint8)


def mass_centre(image: np.ndarray) -> np.ndarray:
    """(x, y) intensity centroid in pixels from the image centre."""
    h, w = image.shape
    gx, gy = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2, indexing="xy")
    total = image.sum(dtype=np.float64)
    return np.array([(gx * image).sum() / total, (gy * image).sum() / total])


DEFAULTS = [cls() for cls in DISTORTIONS.values()]
IDS = list(DISTORTIONS)


# --- warp and rotate ------------------------------------------------------------------------------------


def test_pixel_grid_is_align_corners_false() -> None:
    grid = pixel_grid(2, 4)
    assert grid.shape == (2, 4, 2) and grid.dtype == np.float64
    np.testing.assert_allclose(grid[0, :, 0], [-0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(grid[:, 0, 1], [-0.5, 0.5])


@pytest.mark.parametrize("as_tensor", [False, True])
def test_warp_identity_grid_is_exact(as_tensor: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 9, 12), dtype=np.uint8)
    grid = np.broadcast_to(pixel_grid(9, 12), (5, 9, 12, 2))
    out = warp(images, torch.from_numpy(grid.copy()) if as_tensor else grid, chunk=2)
    assert out.dtype == np.uint8 and np.array_equal(out, images)


def test_warp_integral_shift_pastes_exactly_and_content_moves_down_for_positive_dy() -> None:
    images = l_shapes(2)
    out = warp_affine(images, similarity_matrices(0.0, 1.0, [(-3.0, 2.0), (5.0, -4.0)]), out_size=(42, 42))
    expected = np.zeros((2, 42, 42), dtype=np.uint8)
    expected[0, 7 + 2 : 7 + 2 + 28, 7 - 3 : 7 - 3 + 28] = images[0]  # a 28 box centred in 42 starts at 7
    expected[1, 7 - 4 : 7 - 4 + 28, 7 + 5 : 7 + 5 + 28] = images[1]
    assert np.array_equal(out, expected)


@pytest.mark.parametrize("size", [28, 27])
def test_rotate_90_is_rot90_counter_clockwise(size: int) -> None:
    # Same sign as torchvision.transforms.functional.rotate / PIL: positive = counter-clockwise on screen.
    images = np.random.default_rng(1).integers(0, 256, (3, size, size), dtype=np.uint8)
    assert np.array_equal(rotate(images, 90.0), np.rot90(images, k=1, axes=(1, 2)))
    assert np.array_equal(rotate(images, -90.0), np.rot90(images, k=-1, axes=(1, 2)))
    assert np.array_equal(rotate(images, [180.0, 0.0, 360.0])[0], np.rot90(images[0], k=2))


def test_rotate_back_and_forth_recovers_a_smooth_blob() -> None:
    blob = gaussian_blob(centre=(4.0, -3.0))
    back = rotate(rotate(blob, 37.0), -37.0).astype(int)
    assert np.abs(back - blob).max() <= 12 and np.abs(back - blob).mean() < 1.0
    # the blob 4 px right and 3 px up, turned 90 deg counter-clockwise, ends 3 px left and 4 px up
    np.testing.assert_allclose(mass_centre(rotate(blob, 90.0)[0]), [-3.0, -4.0], atol=0.05)


def test_affine_grid_maps_pixel_units_between_sizes() -> None:
    grid = affine_grid(similarity_matrices(0.0, 2.0), out_size=(4, 4), in_size=(2, 2))
    # output pixel centre u = -1.5 px -> input -0.75 px -> normalized -0.75 * 2 / 2
    np.testing.assert_allclose(grid[0, 0, :, 0], [-0.75, -0.25, 0.25, 0.75])


# --- common properties of every distortion ---------------------------------------------------------------


@pytest.mark.parametrize("spec", DEFAULTS, ids=IDS)
def test_dtype_shape_and_determinism(spec: Distortion) -> None:
    images = l_shapes()
    out = spec.apply(images, np.random.default_rng(7))
    assert out.dtype == np.uint8 and out.shape == (N, *spec.output_size(28, 28))
    assert out.any()
    again = distort(images, spec, np.random.default_rng(7))
    assert again.tobytes() == out.tobytes()
    assert spec.apply(images, np.random.default_rng(8)).tobytes() != out.tobytes()
    assert np.array_equal(spec.apply(images, np.random.default_rng(7), chunk=3), out)


@pytest.mark.parametrize("spec", DEFAULTS, ids=IDS)
def test_empty_input(spec: Distortion) -> None:
    out = spec.apply(np.zeros((0, 28, 28), np.uint8), np.random.default_rng(0))
    assert out.shape == (0, *spec.output_size(28, 28)) and out.dtype == np.uint8


# The bytes of each default distortion of a fixed input and seed: pins determinism across versions.
EXPECTED_SHA256 = {
    "rot": "75dd760819eabcc30b584e54676fd99af32193dfca8f5265088b7d5cafe4698b",
    "rts": "d9cb2fcf09ff13b012caf18e99286f1a200245410f5952247a78e01c767825c5",
    "proj": "4ebad832e945e9e979b5913ba6c9dc64acedb733b13329109597b7d5532739f5",
    "elastic": "c36d57ba0cbde4de02fa1df32366b5603890bed605567bb69f753f049912357d",
}


@pytest.mark.parametrize("kind", IDS)
def test_byte_stability(kind: str) -> None:
    out = DISTORTIONS[kind]().apply(l_shapes(4), np.random.default_rng(2015))
    assert hashlib.sha256(out.tobytes()).hexdigest() == EXPECTED_SHA256[kind]


# --- the identity settings are exact ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        Rotation(max_degrees=0),
        RotationTranslationScale(max_degrees=0, scale_low=1, scale_high=1, canvas=28),
        Projective(scale_low=1, scale_high=1, corner_sd=0),
        Elastic(sd=0),
    ],
    ids=IDS,
)
def test_zero_distortion_is_identity(spec: Distortion) -> None:
    images = l_shapes()
    assert np.array_equal(spec.apply(images, np.random.default_rng(3)), images)


# --- rts -------------------------------------------------------------------------------------------------


def test_rts_translation_only_preserves_mass_and_stays_in_range() -> None:
    blob = np.repeat(gaussian_blob(sigma=3.0), 200, axis=0)
    spec = RotationTranslationScale(max_degrees=0, scale_low=1, scale_high=1, canvas=42)
    out = spec.apply(blob, np.random.default_rng(4))
    totals = out.sum(axis=(1, 2), dtype=np.float64)
    np.testing.assert_allclose(totals, blob[0].sum(dtype=np.float64), rtol=0.01)
    centres = np.array([mass_centre(image) for image in out])
    slack = (42 - 28) / 2
    assert np.abs(centres).max() <= slack + 0.05
    assert (centres.max(axis=0) > slack - 1).all() and (centres.min(axis=0) < -(slack - 1)).all()


def test_rts_rejects_images_too_big_for_the_canvas() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        RotationTranslationScale(canvas=34).apply(np.zeros((1, 40, 40), np.uint8), np.random.default_rng(0))


# --- proj and elastic internals --------------------------------------------------------------------------


def test_homography_maps_corners() -> None:
    rng = np.random.default_rng(5)
    moved = CORNERS + rng.normal(0, 0.15, (3, 4, 2))
    h = fit_homographies(CORNERS[None].repeat(3, 0), moved)
    np.testing.assert_allclose(apply_homographies(h, CORNERS), moved, atol=1e-12)


def test_tps_interpolates_control_points() -> None:
    original = control_grid(4)
    displaced = original + np.random.default_rng(6).normal(0, 0.08, (3, 16, 2))
    coefficients = fit_tps(displaced, np.broadcast_to(original, displaced.shape))
    mapped = eval_tps(coefficients, displaced, displaced)
    np.testing.assert_allclose(mapped, np.broadcast_to(original, mapped.shape), atol=1e-10)


# --- parameters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "rts", "scale_low": 1.3}, "scale_low .* must be <= scale_high"),
        ({"kind": "proj", "scale_low": 0.9, "scale_high": 0.8}, "scale_low .* must be <= scale_high"),
        ({"kind": "rts", "canvas": 30}, "canvas .* must hold"),
        ({"kind": "elastic", "sd": -0.1}, "greater than or equal to 0"),
        ({"kind": "proj", "corner_sd": -1}, "greater than or equal to 0"),
        ({"kind": "rts", "scale_low": 0}, "greater than 0"),
        ({"kind": "rot", "max_degrees": 270}, "less than or equal to 180"),
        ({"kind": "elastic", "control_points": 1}, "greater than or equal to 2"),
        ({"kind": "rot", "degrees": 10}, "Extra inputs are not permitted"),
        ({"kind": "shear"}, "does not match any of the expected tags"),
    ],
)
def test_bad_parameters_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_distortion(data)


def test_discriminated_union_parses_by_kind() -> None:
    spec = TypeAdapter(DistortionSpec).validate_python({"kind": "rts", "canvas": 42})
    assert type(spec) is RotationTranslationScale and spec.canvas == 42 and spec.scale_high == 1.2
    for kind, cls in DISTORTIONS.items():
        assert type(parse_distortion({"kind": kind})) is cls
        assert parse_distortion(cls().model_dump()) == cls()
    with pytest.raises(ValidationError):
        Rotation(kind="rts")
