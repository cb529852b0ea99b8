"""Transform families a spatial transformer can predict, each with its identity.

A family turns the localization net's output vector into a warp `theta` (`warp`) and a warp
into the sampling grid of grid_sample (`grid`). The matrix families make a 3x3 matrix that
maps an output pixel's normalised coordinates (x, y, 1) to where it reads in the input:
restricted families cannot produce shears or flips the classifier never needs and have
fewer numbers to learn; `projective` can also undo perspective. `tps` (stn.models.tps) is
not a matrix: a thin-plate spline through a grid of control points. Adding a family is one
class and one entry in TRANSFORMS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stn.models.tps import ThinPlateSpline


class TransformFamily:
    """Base class: `n_params` numbers -> a warp -> a sampling grid; `identity` is the start value.

    The base class is a matrix family: its warp is (N, 2, 3) affine rows or (N, 3, 3) matrices,
    which the inverse-compositional STN can compose (`composable`).
    """

    name: str = ""
    n_params: int = 0
    identity: tuple[float, ...] = ()
    projective: bool = False  # needs the homogeneous division when building the grid
    composable: bool = True  # warps are 3x3 matrices: iterations > 1 may compose them

    def grid(self, theta: torch.Tensor, size: tuple[int, int, int, int], align_corners: bool) -> torch.Tensor:
        """The (N, H, W, 2) grid of grid_sample for an output of `size` (N, C, H, W) from a warp:
        (N, 2, 3) rows or (N, 3, 3) matrices for a matrix family."""
        return sampling_grid(theta, size, align_corners)

    def identity_distance(self, theta: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared distance of the warps from the identity warp."""
        identity = torch.eye(3, dtype=theta.dtype, device=theta.device)[: theta.shape[1]]
        return (theta - identity).pow(2).sum((1, 2)).mean()

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


# The STN paper's TPS (Jaderberg et al. 2015, sec. 3.2 and Table 1): 16 control points, a 4x4 grid.
TRANSFORMS: dict[str, TransformFamily | ThinPlateSpline] = {
    family.name: family
    for family in (Attention(), Similarity(), Affine(), Projective(), ThinPlateSpline(points_per_side=4))
}
