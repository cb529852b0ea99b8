"""The thin-plate-spline (TPS) transform family of the STN paper (Jaderberg et al. 2015, sec. 3.2).

The localization net predicts where K control points, a regular grid spanning the image
([-1, 1]^2, edges included), read in the input: 2K numbers, (x, y) of each point in
row-major order of the grid, in grid_sample's normalised coordinates. The sampling grid is
the thin-plate spline through those K correspondences (rest position -> predicted position),
evaluated at the output pixels: identity when every point is at rest, a translation when all
move by the same offset (a TPS reproduces affine maps exactly).

The spline is linear in the predicted points, so the grid is one product
`basis (H*W, K) @ points (N, K, 2)`, with `basis` solved once per output size (float64) and
cached. Not a matrix family: its warps cannot be composed, so an inverse-compositional STN
(`iterations` > 1) cannot use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def control_points(points_per_side: int) -> torch.Tensor:
    """The rest positions: a regular grid over [-1, 1]^2, (points_per_side**2, 2) as (x, y), float64,
    x varying fastest (the same grid as the `elastic` distortion's)."""
    ticks = torch.linspace(-1.0, 1.0, points_per_side, dtype=torch.float64)
    ys, xs = torch.meshgrid(ticks, ticks, indexing="ij")
    return torch.stack([xs.flatten(), ys.flatten()], -1)


def _radial(r2: torch.Tensor) -> torch.Tensor:
    """U = r^2 log r^2, the 2-D thin-plate radial basis of squared distances, with U(0) = 0."""
    return torch.where(r2 > 0, r2 * torch.log(r2.clamp(min=1e-300)), torch.zeros_like(r2))


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(M, 2), (K, 2) -> (M, K), by differences (cdist's matrix-product shortcut loses digits)."""
    return (a[:, None, :] - b[None, :, :]).square().sum(-1)


def _affine_part(points: torch.Tensor) -> torch.Tensor:
    """(M, 2) -> (M, 3): (1, x, y)."""
    return torch.cat([torch.ones_like(points[:, :1]), points], 1)


def tps_basis(control: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """(M, K) weights with spline(query) = basis @ values for the TPS interpolating `values` (K, 2)
    at `control` (K, 2); query (M, 2). float64 in, float64 out.

    The spline's coefficients solve [[U(C, C), P], [P^T, 0]] [w; a] = [values; 0]; the spline at
    q is [U(q, C), 1, q] [w; a], so basis = [U(Q, C), P(Q)] @ inverse(system)[:, :K], computed as a
    solve (the system is symmetric).
    """
    k = len(control)
    system = torch.zeros(k + 3, k + 3, dtype=torch.float64)
    system[:k, :k] = _radial(_squared_distances(control, control))
    system[:k, k:] = _affine_part(control)
    system[k:, :k] = _affine_part(control).T
    features = torch.cat([_radial(_squared_distances(query, control)), _affine_part(query)], 1)
    return torch.linalg.solve(system, features.T)[:k].T


class ThinPlateSpline:
    """TPS through a `points_per_side` x `points_per_side` grid of control points: 2K parameters.

    The warp `theta` is (N, K, 2): where each control point reads in the input.
    """

    projective = False
    composable = False  # a spline, not a matrix: the inverse-compositional STN cannot compose it

    def __init__(self, points_per_side: int = 4) -> None:
        if points_per_side < 2:
            raise ValueError(f"a TPS needs at least 2x2 control points, got {points_per_side} per side")
        self.name = "tps"
        self.points_per_side = points_per_side
        self.control = control_points(points_per_side)
        self.n_params = self.control.numel()
        self.identity: tuple[float, ...] = tuple(self.control.flatten().tolist())
        self._bases: dict[tuple, torch.Tensor] = {}

    def warp(self, p: torch.Tensor) -> torch.Tensor:
        """(N, 2K) localization outputs -> (N, K, 2) control point positions."""
        return p.view(len(p), -1, 2)

    def basis(
        self, height: int, width: int, align_corners: bool, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """(H*W, K) spline weights of the output pixels (the points affine_grid's identity gives)."""
        key = (height, width, align_corners, dtype, str(device))
        if key not in self._bases:
            eye = torch.eye(2, 3, dtype=torch.float64).unsqueeze(0)
            pixels = F.affine_grid(eye, [1, 1, height, width], align_corners=align_corners).view(-1, 2)
            self._bases[key] = tps_basis(self.control, pixels).to(dtype=dtype, device=device)
        return self._bases[key]

    def grid(self, theta: torch.Tensor, size: tuple[int, int, int, int], align_corners: bool) -> torch.Tensor:
        """The (N, H, W, 2) grid of grid_sample for an output of `size` (N, C, H, W); theta (N, K, 2)."""
        n, _, height, width = size
        basis = self.basis(height, width, align_corners, theta.dtype, theta.device)
        return (basis @ theta).view(n, height, width, 2)

    def identity_distance(self, theta: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of the squared distance of the control points from their rest positions."""
        rest = self.control.to(dtype=theta.dtype, device=theta.device)
        return (theta - rest).pow(2).sum((1, 2)).mean()
