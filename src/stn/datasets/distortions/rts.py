"""``rts``: rotate, scale and place the digit at a random position in a larger canvas."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from stn.datasets.distortions.base import MNIST_SIZE, Distortion, check_images, check_range
from stn.datasets.warp import DEFAULT_CHUNK, similarity_matrices, warp_affine


class RotationTranslationScale(Distortion):
    """Rotation ~ U(+-max_degrees), scale ~ U(scale_low, scale_high), random position in a square canvas.

    The digit's centre is offset from the canvas centre by (dx, dy), each uniform in
    ``+-(canvas - scale * size) / 2`` pixels (independently), so the scaled, unrotated digit box stays inside
    the canvas (corners of a rotated box may be cut off, as in the paper).  Distances are in pixels: scale 1
    keeps the digit's pixel size.
    """

    kind: Literal["rts"] = "rts"
    # Paper ("RTS"): rotation uniform in +-45 degrees ...
    max_degrees: float = Field(
        45.0, ge=0.0, le=180.0, description="Angles are drawn uniformly in [-max_degrees, max_degrees]."
    )
    # ... scale uniform in 0.7-1.2 ...
    scale_low: float = Field(0.7, gt=0.0, description="Smallest scale factor (1 keeps the digit's size).")
    scale_high: float = Field(1.2, gt=0.0, description="Largest scale factor.")
    # ... and placed at a random location in a 42x42 image.
    canvas: int = Field(42, ge=1, description="Side in pixels of the square output image.")

    @model_validator(mode="after")
    def _check(self) -> RotationTranslationScale:
        check_range(self.scale_low, self.scale_high, "scale_low", "scale_high")
        if self.canvas < MNIST_SIZE * self.scale_high:
            raise ValueError(
                f"canvas ({self.canvas}) must hold a {MNIST_SIZE}x{MNIST_SIZE} digit scaled by scale_high "
                f"({self.scale_high}), i.e. be >= {MNIST_SIZE * self.scale_high:g}"
            )
        return self

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.canvas, self.canvas

    def apply(
        self, images: np.ndarray, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        images = check_images(images)
        n, height, width = images.shape
        if self.canvas < self.scale_high * max(height, width):
            raise ValueError(
                f"canvas {self.canvas} cannot hold {height}x{width} images scaled by {self.scale_high}"
            )
        # Draw order is part of the dataset's definition: angles, scales, then (x, y) position fractions.
        degrees = rng.uniform(-self.max_degrees, self.max_degrees, size=n)
        scales = rng.uniform(self.scale_low, self.scale_high, size=n)
        fractions = rng.uniform(-1.0, 1.0, size=(n, 2))
        slack = (self.canvas - scales[:, None] * np.array([width, height], dtype=np.float64)) / 2.0
        matrices = similarity_matrices(degrees, scales, fractions * slack)
        return warp_affine(images, matrices, (self.canvas, self.canvas), chunk=chunk)
