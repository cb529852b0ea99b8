"""``proj``: a random projective (homography) warp from a random scale and jittered image corners."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from stn.datasets.distortions.base import Distortion, check_images, check_range
from stn.datasets.warp import DEFAULT_CHUNK, pixel_grid, warp_lazy

# The image corners in normalized coordinates (x, y; y down): top-left, top-right, bottom-right, bottom-left.
CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])


def fit_homographies(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Homographies (N, 3, 3), with H[2, 2] = 1, mapping the 4 points ``src[n]`` to ``dst[n]`` (N, 4, 2).

    Solves the usual 8x8 linear system, batched over N.
    """
    src, dst = np.asarray(src, dtype=np.float64), np.asarray(dst, dtype=np.float64)
    n = len(src)
    x, y = src[..., 0], src[..., 1]  # (N, 4)
    u, v = dst[..., 0], dst[..., 1]
    zero, one = np.zeros_like(x), np.ones_like(x)
    # u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1), same for v with h3..h5.
    rows_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], axis=-1)  # (N, 4, 8)
    rows_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], axis=-1)
    system = np.concatenate([rows_u, rows_v], axis=1)  # (N, 8, 8)
    rhs = np.concatenate([u, v], axis=1)[..., None]  # (N, 8, 1)
    h = np.linalg.solve(system, rhs)[..., 0]
    return np.concatenate([h, np.ones((n, 1))], axis=1).reshape(n, 3, 3)


def apply_homographies(homographies: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``points`` (..., 2), broadcast against (N, ...), through each homography: (N, ..., 2)."""
    homographies = np.asarray(homographies, dtype=np.float64)
    extra = (None,) * (np.ndim(points) - 1)
    h = homographies[(slice(None), *extra)]  # (N, 1, ..., 1, 3, 3)
    x, y = points[..., 0], points[..., 1]
    mapped = [h[..., i, 0] * x + h[..., i, 1] * y + h[..., i, 2] for i in range(3)]
    # A denominator of 0 (only for a degenerate, folded quad) gives inf/nan, which warp() reads as zeros.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.stack([mapped[0] / mapped[2], mapped[1] / mapped[2]], axis=-1)


class Projective(Distortion):
    """Scale ~ U(scale_low, scale_high) about the centre, then each corner moved by N(0, corner_sd) noise.

    Everything is in normalized units (the image spans [-1, 1] in x and y).  The forward homography maps
    the image corners to the scaled, jittered corners; the sampling grid uses the inverse homography,
    fitted directly from the jittered corners back to the original ones.  Same output size.
    """

    kind: Literal["proj"] = "proj"
    # Paper ("P"): the image is first scaled by a random factor in 0.75-1.0 ...
    scale_low: float = Field(0.75, gt=0.0, description="Smallest scale factor about the image centre.")
    scale_high: float = Field(1.0, gt=0.0, description="Largest scale factor about the image centre.")
    # ... then the corners are perturbed by Gaussian noise; the paper gives no precise scale: our choice.
    corner_sd: float = Field(
        0.15, ge=0.0, le=1.0, description="Std of each corner's x and y displacement, normalized units."
    )

    @model_validator(mode="after")
    def _check(self) -> Projective:
        check_range(self.scale_low, self.scale_high, "scale_low", "scale_high")
        return self

    def apply(
        self, images: np.ndarray, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        images = check_images(images)
        n, height, width = images.shape
        # Draw order: scales, then corner noise (N, 4 corners, x/y).
        scales = rng.uniform(self.scale_low, self.scale_high, size=n)
        noise = rng.normal(0.0, self.corner_sd, size=(n, 4, 2))
        moved = scales[:, None, None] * CORNERS + noise
        inverse = fit_homographies(moved, np.broadcast_to(CORNERS, moved.shape))
        centres = pixel_grid(height, width)
        return warp_lazy(images, lambda start, stop: apply_homographies(inverse[start:stop], centres), chunk)
