"""Resampling images through a sampling grid: the one place where pixels are interpolated.

Coordinate conventions (shared by every distortion):

* **Normalized coordinates** are those of ``torch.nn.functional.grid_sample`` with ``align_corners=False``:
  ``x`` (column) first, then ``y`` (row); the image *edges* are at -1 and +1, so the centre of pixel ``j``
  of a row of width ``W`` is at ``x_j = (2j + 1) / W - 1``.
* **Centred pixel coordinates** ``(u, v)`` measure in pixels from the image centre, ``u`` to the right and
  ``v`` *down* (rows grow downwards on screen): ``u = x * W / 2``, ``v = y * H / 2``.  Geometric transforms
  between images of different sizes (a 28x28 digit placed in a 42x42 canvas) are expressed in these units,
  so a transform with unit scale keeps the digit's size in pixels and the two image centres coincide.
* A **grid** has shape (N, Ho, Wo, 2) and says, for each *output* pixel, where to read in the *input*
  (normalized input coordinates).  Users specify the *forward* transform (what happens to the digit); the
  grid is built from its inverse.
* A **positive angle rotates counter-clockwise as seen on screen**, like ``PIL.Image.rotate`` and
  ``torchvision.transforms.functional.rotate``.  Because ``v`` points down, the forward rotation matrix in
  centred pixel coordinates is ``[[cos t, sin t], [-sin t, cos t]]``.

Interpolation is bilinear with zero padding, in float64, rounded half-to-even (``np.rint``) back to uint8.
Work is done in chunks of images so that grids for a whole dataset (60000 x 42 x 42 x 2 float64 would be
1.7 GB) are never held at once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_CHUNK = 2048

GridFn = Callable[[int, int], np.ndarray]
"""``grid_fn(start, stop)`` returns the grid for images ``start:stop``, shape (stop - start, Ho, Wo, 2)."""


def pixel_grid(height: int, width: int) -> np.ndarray:
    """Normalized (x, y) centres of the pixels of a ``height`` x ``width`` image, shape (H, W, 2), float64."""
    xs = (2.0 * np.arange(width) + 1.0) / width - 1.0
    ys = (2.0 * np.arange(height) + 1.0) / height - 1.0
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return np.stack([gx, gy], axis=-1)


def centred_pixel_grid(height: int, width: int) -> np.ndarray:
    """Centred pixel coordinates (u right, v down, in pixels from the image centre), shape (H, W, 2)."""
    return pixel_grid(height, width) * (np.array([width, height], dtype=np.float64) / 2.0)


def similarity_matrices(
    degrees: np.ndarray | float,
    scale: np.ndarray | float = 1.0,
    shift: np.ndarray | tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Forward transforms (N, 2, 3) in centred pixel coordinates: rotate, then scale, then shift.

    ``degrees`` > 0 rotates counter-clockwise on screen; ``shift`` is (dx, dy) in pixels with dy > 0 moving
    the content *down*.  Arguments broadcast against each other; the result has one matrix per element.
    """
    theta = np.atleast_1d(np.deg2rad(np.asarray(degrees, dtype=np.float64)))
    scale = np.atleast_1d(np.asarray(scale, dtype=np.float64))
    shift = np.asarray(shift, dtype=np.float64).reshape(-1, 2)
    (n,) = np.broadcast_shapes(theta.shape, scale.shape, shift.shape[:1])
    theta, scale, shift = (
        np.broadcast_to(theta, (n,)),
        np.broadcast_to(scale, (n,)),
        np.broadcast_to(shift, (n, 2)),
    )
    cos, sin = np.cos(theta) * scale, np.sin(theta) * scale
    out = np.empty((n, 2, 3), dtype=np.float64)
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cos, sin, shift[:, 0]
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = -sin, cos, shift[:, 1]
    return out


def affine_grid(
    matrices: np.ndarray, out_size: tuple[int, int], in_size: tuple[int, int] | None = None
) -> np.ndarray:
    """Sampling grid (N, Ho, Wo, 2) for *forward* affine transforms given in centred pixel coordinates.

    ``matrices[n] = [A | t]`` maps a point ``p_in`` of input ``n`` (centred pixels, v down) to
    ``p_out = A @ p_in + t`` in the output.  Each output pixel therefore reads the input at
    ``A^-1 (p_out - t)``, converted to the input's normalized coordinates.  ``in_size`` defaults to
    ``out_size``.  Sizes are (height, width).
    """
    matrices = np.asarray(matrices, dtype=np.float64)
    if matrices.ndim != 3 or matrices.shape[1:] != (2, 3):
        raise ValueError(f"matrices must have shape (N, 2, 3), got {matrices.shape}")
    in_h, in_w = in_size if in_size is not None else out_size
    inverse = np.linalg.inv(matrices[:, :, :2])  # (N, 2, 2)
    p_out = centred_pixel_grid(*out_size)  # (Ho, Wo, 2)
    rel = p_out[None] - matrices[:, None, None, :, 2]  # (N, Ho, Wo, 2)
    p_in = np.einsum("nij,nhwj->nhwi", inverse, rel)
    return p_in * (2.0 / np.array([in_w, in_h], dtype=np.float64))


def warp_lazy(images: np.ndarray, grid_fn: GridFn, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Like :func:`warp`, but the grid of each chunk is built on demand by ``grid_fn(start, stop)``."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"images must be uint8 of shape (N, H, W), got {images.dtype} {images.shape}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n, height, width = images.shape
    if n == 0:
        _, out_h, out_w, _ = grid_fn(0, 0).shape
        return np.zeros((0, out_h, out_w), dtype=np.uint8)
    parts = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        parts.append(_warp_chunk(images[start:stop], grid_fn(start, stop), height, width))
    return np.concatenate(parts, axis=0)


def warp(images: np.ndarray, grid: np.ndarray | torch.Tensor, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Resample uint8 ``images`` (N, H, W) at ``grid`` (N, Ho, Wo, 2, normalized input coordinates).

    Bilinear, zero padding, float64, rounded to the nearest integer and clipped to 0..255; returns uint8
    (N, Ho, Wo).  Images are independent, so the result does not depend on ``chunk``.
    """
    if isinstance(grid, torch.Tensor):
        grid = grid.detach().cpu().numpy()
    grid = np.asarray(grid)
    if grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != len(images):
        raise ValueError(f"grid must have shape (N={len(images)}, Ho, Wo, 2), got {grid.shape}")
    return warp_lazy(images, lambda start, stop: grid[start:stop], chunk)


def warp_affine(
    images: np.ndarray,
    matrices: np.ndarray,
    out_size: tuple[int, int] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> np.ndarray:
    """Apply forward affine transforms (see :func:`affine_grid`), building grids chunk by chunk."""
    in_size = images.shape[1:3]
    out_size = tuple(out_size) if out_size is not None else in_size
    matrices = np.asarray(matrices, dtype=np.float64)
    if len(matrices) != len(images):
        raise ValueError(f"need one matrix per image: {len(matrices)} matrices, {len(images)} images")
    return warp_lazy(images, lambda start, stop: affine_grid(matrices[start:stop], out_size, in_size), chunk)


def rotate(images: np.ndarray, degrees: np.ndarray | float, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """Rotate each image about its centre, counter-clockwise on screen for positive ``degrees``.

    Same convention as ``torchvision.transforms.functional.rotate`` (and PIL): ``rotate(x, 90)`` equals
    ``np.rot90(x, k=1, axes=(1, 2))``.  Same size, zero fill.  ``degrees`` is a scalar or one per image.
    """
    degrees = np.broadcast_to(np.asarray(degrees, dtype=np.float64), (len(images),))
    return warp_affine(images, similarity_matrices(degrees), chunk=chunk)


def _warp_chunk(images: np.ndarray, grid: np.ndarray, height: int, width: int) -> np.ndarray:
    grid = torch.from_numpy(np.array(grid, dtype=np.float64))  # a copy: input may be a read-only view
    if grid.ndim != 4 or grid.shape[0] != len(images) or grid.shape[-1] != 2:
        raise ValueError(f"grid chunk must have shape ({len(images)}, Ho, Wo, 2), got {tuple(grid.shape)}")
    # Safety for degenerate transforms (e.g. a wild homography): anything beyond half a pixel outside the
    # image already reads zeros, so clamping there changes nothing else but keeps indices finite.
    bound = torch.tensor([1.0 + 2.0 / width, 1.0 + 2.0 / height], dtype=torch.float64)
    grid = torch.nan_to_num(grid, nan=3.0).clamp(-bound, bound)
    source = torch.from_numpy(images.astype(np.float64))[:, None]  # (n, 1, H, W)
    out = F.grid_sample(source, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return np.clip(np.rint(out[:, 0].numpy()), 0, 255).astype(np.uint8)
