"""Transform families a spatial transformer can predict, each with its identity.

A family turns the localization net's output vector into a 3x3 matrix that maps an
output pixel's normalised coordinates (x, y, 1) to where it reads in the input. Restricted
families cannot produce shears or flips the classifier never needs and have fewer numbers
to learn; `projective` can also undo perspective. Adding a family is one class here and
one entry in TRANSFORMS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class TransformFamily:
    """Base class: `n_params` numbers -> (N, 3, 3) matrices; `identity` is the start value."""

    name: str = ""
    n_params: int = 0
    identity: tuple[float, ...] = ()
    projective: bool = False  # needs the homogeneous division when building the grid

    def rows(self, p: torch.Tensor) -> torch.Tensor:
        """The top two rows (N, 2, 3): all that affine_grid needs for a non-projective family."""
        raise NotImplementedError

    def matrix(self, p: torch.Tensor) -> torch.Tensor:
        return _rows_to_matrix(self.rows(p))


def _rows_to_matrix(top: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) affine rows -> (N, 3, 3) with the last row (0, 0, 1)."""
    last = torch.tensor([0.0, 0.0, 1.0], dtype=top.dtype, device=top.device).expand(len(top), 1, 3)
    return torch.cat([top, last], dim=1)


class Attention(TransformFamily):
    """Isotropic scale + translation (the STN paper's "attention"): (s, tx, ty)."""

    name, n_params, identity = "attention", 3, (1.0, 0.0, 0.0)

    def rows(self, p: torch.Tensor) -> torch.Tensor:
        s, tx, ty = p.unbind(1)
        zero = torch.zeros_like(s)
        return torch.stack([s, zero, tx, zero, s, ty], 1).view(-1, 2, 3)


class Similarity(TransformFamily):
    """Rotation + isotropic scale + translation, linear in (a, b, tx, ty): [[a, -b, tx], [b, a, ty]]."""

    name, n_params, identity = "similarity", 4, (1.0, 0.0, 0.0, 0.0)

    def rows(self, p: torch.Tensor) -> torch.Tensor:
        a, b, tx, ty = p.unbind(1)
        return torch.stack([a, -b, tx, b, a, ty], 1).view(-1, 2, 3)


class Affine(TransformFamily):
    """The tutorial's full 2x3 affine matrix, row-major."""

    name, n_params, identity = "affine", 6, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)

    def rows(self, p: torch.Tensor) -> torch.Tensor:
        return p.view(-1, 2, 3)


class Projective(TransformFamily):
    """A homography with its last entry fixed at 1: 8 numbers, row-major."""

    name, n_params, identity = "projective", 8, (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)
    projective = True

    def rows(self, p: torch.Tensor) -> torch.Tensor:
        raise TypeError("a projective transform has no affine rows; use matrix()")

    def matrix(self, p: torch.Tensor) -> torch.Tensor:
        one = torch.ones(len(p), 1, dtype=p.dtype, device=p.device)
        return torch.cat([p, one], 1).view(-1, 3, 3)


TRANSFORMS: dict[str, TransformFamily] = {
    family.name: family for family in (Attention(), Similarity(), Affine(), Projective())
}


def sampling_grid(matrix: torch.Tensor, size: tuple[int, int, int, int], align_corners: bool) -> torch.Tensor:
    """The (N, H, W, 2) grid for grid_sample from (N, 2, 3) affine rows or (N, 3, 3) matrices."""
    if matrix.shape[1] == 2:
        return F.affine_grid(matrix, list(size), align_corners=align_corners)
    # affine_grid of the identity gives the output pixels' (x, y); lift to (x, y, 1) and divide.
    n, _, height, width = size
    eye = torch.eye(2, 3, dtype=matrix.dtype, device=matrix.device).expand(n, 2, 3)
    base = F.affine_grid(eye, [n, 1, height, width], align_corners=align_corners)
    ones = torch.ones_like(base[..., :1])
    points = torch.cat([base, ones], -1).view(n, -1, 3) @ matrix.transpose(1, 2)
    # Keep the homogeneous coordinate away from 0 (where the map runs off to infinity).
    w = points[..., 2:].clamp(min=1e-3)
    return (points[..., :2] / w).view(n, height, width, 2)
