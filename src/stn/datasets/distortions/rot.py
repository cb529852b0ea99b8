"""``rot``: each digit rotated about its centre by a uniformly random angle."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from stn.datasets.distortions.base import Distortion, check_images
from stn.datasets.warp import DEFAULT_CHUNK, rotate


class Rotation(Distortion):
    """Rotate by an angle ~ U(-max_degrees, max_degrees); positive = counter-clockwise on screen."""

    kind: Literal["rot"] = "rot"
    # Paper (Jaderberg et al. 2015, distorted MNIST "R"): rotations drawn uniformly in +-90 degrees.
    max_degrees: float = Field(
        90.0, ge=0.0, le=180.0, description="Angles are drawn uniformly in [-max_degrees, max_degrees]."
    )

    def apply(
        self, images: np.ndarray, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        images = check_images(images)
        degrees = rng.uniform(-self.max_degrees, self.max_degrees, size=len(images))
        return rotate(images, degrees, chunk=chunk)
