"""``elastic``: a thin-plate-spline warp driven by randomly displaced control points."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from stn.datasets.distortions.base import Distortion, check_images
from stn.datasets.warp import DEFAULT_CHUNK, pixel_grid, warp_lazy


def control_grid(points_per_side: int) -> np.ndarray:
    """A square grid of control points spanning [-1, 1]^2, image edges included: (points_per_side**2, 2)."""
    ticks = np.linspace(-1.0, 1.0, points_per_side)
    gx, gy = np.meshgrid(ticks, ticks, indexing="xy")
    return np.stack([gx.ravel(), gy.ravel()], axis=-1)


def _tps_kernel(r2: np.ndarray) -> np.ndarray:
    """U(r) = r^2 log r^2 (the 2-D thin-plate radial basis), with U(0) = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(r2 > 0.0, r2 * np.log(r2), 0.0)


def fit_tps(centres: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Thin-plate splines f_n with f_n(centres[n, k]) = targets[n, k]; centres, targets (N, K, 2).

    Returns coefficients (N, K + 3, 2): K radial weights, then the affine part (constant, x, y), from the
    batched (K + 3) x (K + 3) system ``[[U, P], [P^T, 0]] [w; a] = [targets; 0]``.
    """
    centres, targets = np.asarray(centres, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    n, k, _ = centres.shape
    r2 = ((centres[:, :, None, :] - centres[:, None, :, :]) ** 2).sum(-1)
    p = np.concatenate([np.ones((n, k, 1)), centres], axis=-1)  # (N, K, 3)
    system = np.zeros((n, k + 3, k + 3))
    system[:, :k, :k] = _tps_kernel(r2)
    system[:, :k, k:] = p
    system[:, k:, :k] = p.transpose(0, 2, 1)
    rhs = np.concatenate([targets, np.zeros((n, 3, 2))], axis=1)
    return np.linalg.solve(system, rhs)


def eval_tps(coefficients: np.ndarray, centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Evaluate the splines of :func:`fit_tps` at ``points`` (M, 2) or (N, M, 2): returns (N, M, 2)."""
    coefficients, centres = np.asarray(coefficients), np.asarray(centres)
    n, k, _ = centres.shape
    points = np.broadcast_to(np.asarray(points, dtype=np.float64), (n, *np.shape(points)[-2:]))
    affine = coefficients[:, k:]  # (N, 3, 2)
    out = affine[:, None, 0] + points[..., :1] * affine[:, None, 1] + points[..., 1:] * affine[:, None, 2]
    for j in range(k):  # one control point at a time: memory O(N M), not O(N M K)
        r2 = ((points - centres[:, None, j]) ** 2).sum(-1)
        out = out + _tps_kernel(r2)[..., None] * coefficients[:, None, j]
    return out


class Elastic(Distortion):
    """Thin-plate-spline warp: a control grid spanning the image, each point moved by N(0, sd) noise.

    Units are normalized (the image spans [-1, 1]); the control points include the image edges.  The digit
    content at control point c_k moves to c_k + noise_k: the grid is the spline that maps each displaced
    point back to its original position (output -> input), evaluated at the output pixel centres.
    """

    kind: Literal["elastic"] = "elastic"
    # Paper ("E"): a thin-plate spline with 16 control points, i.e. a 4x4 grid ...
    control_points: int = Field(
        4, ge=2, le=16, description="Control points per side (K = control_points**2)."
    )
    # ... randomly perturbed by Gaussian noise; the paper gives no precise scale: our choice.
    sd: float = Field(
        0.08, ge=0.0, le=1.0, description="Std of each control point's displacement, normalized units."
    )

    def apply(
        self, images: np.ndarray, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        images = check_images(images)
        n, height, width = images.shape
        original = control_grid(self.control_points)
        # The only draw: displacements (N, K, x/y).
        displaced = original + rng.normal(0.0, self.sd, size=(n, len(original), 2))
        coefficients = fit_tps(displaced, np.broadcast_to(original, displaced.shape))
        query = pixel_grid(height, width).reshape(-1, 2)

        def grid_fn(start: int, stop: int) -> np.ndarray:
            mapped = eval_tps(coefficients[start:stop], displaced[start:stop], query)
            return mapped.reshape(stop - start, height, width, 2)

        return warp_lazy(images, grid_fn, chunk)
