"""The interface every distortion implements: a frozen, validated parameter set that can warp images."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from pydantic import BaseModel, ConfigDict

from stn.datasets.warp import DEFAULT_CHUNK

MNIST_SIZE = 28
"""Side of the source digits; the parameter checks (e.g. the RTS canvas must hold a scaled digit) use it."""


class Distortion(BaseModel, ABC):
    """A random geometric distortion, a pure function of (images, rng, parameters).

    Subclasses add a ``kind: Literal[...]`` discriminator and their parameters.  ``apply`` must draw every
    per-image random number from ``rng`` up front, in a fixed order, so that results depend only on the
    images, the rng state and the parameters (never on ``chunk``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the distorted images for inputs of the given size: by default the
        input's, since most distortions warp in place; a distortion onto a larger canvas overrides it."""
        return height, width

    @abstractmethod
    def apply(
        self, images: np.ndarray, rng: np.random.Generator, *, chunk: int = DEFAULT_CHUNK
    ) -> np.ndarray:
        """Distort uint8 ``images`` (N, H, W) -> uint8 (N, *output_size(H, W))."""


def check_images(images: np.ndarray) -> np.ndarray:
    """Validate the common input format: uint8 (N, H, W)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 of shape (N, H, W), got {images.dtype} {images.shape}")
    return images


def check_range(low: float, high: float, low_name: str, high_name: str) -> None:
    """Raise a readable error for an empty range (pydantic wraps it in a ValidationError)."""
    if low > high:
        raise ValueError(f"{low_name} ({low}) must be <= {high_name} ({high})")
