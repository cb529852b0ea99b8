"""Transform families, the inverse-compositional STN, background padding, the identity penalty."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stn.models.builder import InputShape, build_model
from stn.models.localization import SpatialTransformer
from stn.models.tps import tps_basis
from stn.models.transforms import TRANSFORMS, sampling_grid
from stn.params.run import TrainParams
from stn.training.optim import build_optimizer, lr_factor, set_lr
from stn.variant import VariantSpec

SIZES = [(28, 28), (42, 42)]
MATRIX_FAMILIES = [name for name, family in TRANSFORMS.items() if family.composable]


def _smooth_images(n: int, size: tuple[int, int]) -> torch.Tensor:
    torch.manual_seed(0)
    return F.avg_pool2d(torch.randn(n, 1, *size), 5, stride=1, padding=2)


@pytest.mark.parametrize("family", MATRIX_FAMILIES)
def test_identity_parameters_give_the_identity_matrix(family: str) -> None:
    f = TRANSFORMS[family]
    p = torch.tensor([f.identity, f.identity], dtype=torch.float64)
    assert f.n_params == len(f.identity)
    assert torch.equal(f.matrix(p), torch.eye(3, dtype=torch.float64).expand(2, 3, 3))


@pytest.mark.parametrize("family", list(TRANSFORMS))
@pytest.mark.parametrize("iterations", [1, 3])
@pytest.mark.parametrize("size", SIZES)
def test_stn_at_initialisation_returns_its_input(family: str, iterations: int, size) -> None:
    """Zero weights and the identity bias: the STN starts as the identity map."""
    if iterations > 1 and not TRANSFORMS[family].composable:
        pytest.skip("iterations compose matrices")
    spec = VariantSpec(transform=family, iterations=iterations)
    stn = SpatialTransformer(spec, size).double()
    x = _smooth_images(3, size).double()
    # TPS rest points at +-1/3 were rounded to float32 in the bias before .double(): float tolerance.
    tolerance = 1e-12 if TRANSFORMS[family].composable else 1e-6
    torch.testing.assert_close(stn(x), x, rtol=0, atol=tolerance)


@pytest.mark.parametrize("family", list(TRANSFORMS))
def test_parameter_counts_and_output_shapes(family: str) -> None:
    for size in SIZES:
        spec = VariantSpec(transform=family, output_size=(28, 28))
        model = build_model(spec, InputShape(size=size, classes=10))
        assert model.stn.fc_loc[2].out_features == TRANSFORMS[family].n_params
        x = torch.randn(5, 1, *size)
        assert model.transform(x).shape == (5, 1, 28, 28)
        assert model(x).shape == (5, 10)


def test_cnn_sizes_follow_the_input() -> None:
    assert build_model(VariantSpec(stn=False)).classifier.fc1.in_features == 320  # the tutorial's
    big = build_model(VariantSpec(stn=False), InputShape(size=(42, 42), classes=7))
    assert big.classifier.fc1.in_features == 980 and big(torch.randn(2, 1, 42, 42)).shape == (2, 7)
    assert build_model(VariantSpec()).stn.fc_loc[0].in_features == 90  # the tutorial's 10 * 3 * 3


def test_similarity_is_a_rotation_and_scale() -> None:
    angle, scale = 0.3, 1.5
    p = torch.tensor(
        [[scale * torch.cos(torch.tensor(angle)), scale * torch.sin(torch.tensor(angle)), 0.1, -0.2]]
    )
    m = TRANSFORMS["similarity"].matrix(p)[0, :2, :2]
    torch.testing.assert_close(m.T @ m, scale**2 * torch.eye(2))


def test_projective_grid_equals_affine_grid_for_an_affine_matrix() -> None:
    m = torch.tensor([[[0.9, 0.1, 0.05], [-0.2, 1.1, 0.0], [0.0, 0.0, 1.0]]])
    size = (1, 1, 7, 9)
    torch.testing.assert_close(
        sampling_grid(m, size, False), F.affine_grid(m[:, :2], list(size), align_corners=False)
    )


def test_inverse_compositional_output_is_one_warp_with_the_composed_matrix() -> None:
    """Each step's update is composed with the current transform; the input is resampled once."""
    torch.manual_seed(1)
    spec = VariantSpec(transform="affine", iterations=3)
    stn = SpatialTransformer(spec, (28, 28)).double()
    for p in stn.parameters():  # move away from the identity so every step does something
        p.data.add_(0.05 * torch.randn_like(p))
    x = _smooth_images(4, (28, 28)).double()
    family = stn.family
    matrix = torch.eye(3, dtype=x.dtype).expand(4, 3, 3)
    for step in range(3):
        current = (
            x if step == 0 else F.grid_sample(x, sampling_grid(matrix, x.shape, False), align_corners=False)
        )
        matrix = matrix @ family.matrix(stn.predict(current))
    torch.testing.assert_close(stn.transform(x), matrix)
    once = F.grid_sample(x, sampling_grid(matrix, x.shape, False), align_corners=False)
    torch.testing.assert_close(stn(x), once)


def test_background_padding_fills_outside_with_the_background_value() -> None:
    background = -0.4242
    spec = VariantSpec(padding="background")
    stn = SpatialTransformer(spec, (28, 28), background=background)
    with torch.no_grad():  # zoom out by 2: the border of the output reads outside the input
        stn.fc_loc[2].bias.copy_(torch.tensor([2.0, 0.0, 0.0, 0.0, 2.0, 0.0]))
    x = torch.full((2, 1, 28, 28), background)
    x[:, :, 10:18, 10:18] = 2.0
    out = stn(x)
    assert torch.equal(out[:, :, :6, :], torch.full_like(out[:, :, :6, :], background))
    zeros = SpatialTransformer(VariantSpec(), (28, 28))
    with torch.no_grad():
        zeros.fc_loc[2].bias.copy_(torch.tensor([2.0, 0.0, 0.0, 0.0, 2.0, 0.0]))
    assert torch.equal(zeros(x)[:, :, :6, :], torch.zeros(2, 1, 6, 28))  # grid_sample's own padding: 0


def test_identity_penalty_is_zero_at_the_identity_and_adds_to_the_loss() -> None:
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    plain = build_model(VariantSpec())
    torch.manual_seed(0)
    penalised = build_model(VariantSpec(identity_penalty=10.0))
    plain.eval(), penalised.eval()
    torch.testing.assert_close(plain.training_loss(x, y)[0], penalised.training_loss(x, y)[0])
    with torch.no_grad():
        penalised.stn.fc_loc[2].bias.add_(torch.tensor([0.1, 0, 0, 0, 0, 0]))
        plain.stn.fc_loc[2].bias.add_(torch.tensor([0.1, 0, 0, 0, 0, 0]))
    gap = penalised.training_loss(x, y)[0] - plain.training_loss(x, y)[0]
    torch.testing.assert_close(gap, torch.tensor(10.0 * 0.1**2))


def test_identity_penalty_fades_out_over_its_epochs() -> None:
    fading = VariantSpec(identity_penalty=1.0, identity_penalty_epochs=3)
    assert [fading.identity_weight(e) for e in (1, 2, 3, 4, 10)] == pytest.approx([1, 2 / 3, 1 / 3, 0, 0])
    assert VariantSpec(identity_penalty=0.5).identity_weight(10) == 0.5  # no fading asked: constant
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    model = build_model(fading).eval()
    with torch.no_grad():
        model.stn.fc_loc[2].bias.add_(torch.tensor([0.1, 0, 0, 0, 0, 0]))
    plain = F.nll_loss(model(x), y)
    torch.testing.assert_close(model.training_loss(x, y, epoch=4)[0], plain)  # faded out
    torch.testing.assert_close(model.training_loss(x, y, epoch=2)[0], plain + 2 / 3 * 0.1**2)
    with pytest.raises(ValueError, match="configure the spatial transformer"):
        VariantSpec(stn=False, identity_penalty_epochs=3)


def test_localization_learning_rate_group_and_schedule() -> None:
    model = build_model(VariantSpec(loc_lr_scale=0.1))
    params = TrainParams(lr=0.02, epochs=4, schedule="cosine")
    optimizer = build_optimizer(model, params)
    set_lr(optimizer, params, 1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.002, 0.02])
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    assert [lr_factor(params, e) for e in (1, 3)] == pytest.approx([1.0, 0.5])
    constant = TrainParams(lr=0.01)
    single = build_optimizer(build_model(VariantSpec()), constant)
    set_lr(single, constant, 7)
    assert len(single.param_groups) == 1 and single.param_groups[0]["lr"] == 0.01


def test_stn_only_settings_are_refused_without_an_stn() -> None:
    with pytest.raises(ValueError, match="stn: false cannot set them"):
        VariantSpec(stn=False, transform="projective")
    with pytest.raises(ValueError, match="transform"):
        VariantSpec(transform="bogus")


def test_parameter_count_of_every_family() -> None:
    counts = {name: family.n_params for name, family in TRANSFORMS.items()}
    assert counts == {
        "attention": 3,
        "similarity": 4,
        "affine": 6,
        "projective": 8,
        "tps": 32,
    }  # tps: 4x4 (x, y)
    assert all(len(family.identity) == family.n_params for family in TRANSFORMS.values())


def _previous_sampling_grid(matrix: torch.Tensor, size: tuple[int, int, int, int]) -> torch.Tensor:
    """sampling_grid as it was before the families made their own grids (commit e365d83), verbatim."""
    if matrix.shape[1] == 2:
        return F.affine_grid(matrix, list(size), align_corners=False)
    n, _, height, width = size
    eye = torch.eye(2, 3, dtype=matrix.dtype, device=matrix.device).expand(n, 2, 3)
    base = F.affine_grid(eye, [n, 1, height, width], align_corners=False)
    ones = torch.ones_like(base[..., :1])
    points = torch.cat([base, ones], -1).view(n, -1, 3) @ matrix.transpose(1, 2)
    w = points[..., 2:].clamp(min=1e-3)
    return (points[..., :2] / w).view(n, height, width, 2)


@pytest.mark.parametrize("family", MATRIX_FAMILIES)
@pytest.mark.parametrize("iterations", [1, 2])
def test_matrix_families_sample_bitwise_as_before(family: str, iterations: int) -> None:
    """Grids, resampled images and the identity penalty of the matrix families are the previous
    code path's, bit for bit, on random transforms."""
    torch.manual_seed(3)
    stn = SpatialTransformer(VariantSpec(transform=family, iterations=iterations), (28, 28))
    for p in stn.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    x = torch.randn(4, 1, 28, 28)
    theta = stn.transform(x)
    size = (4, 1, 28, 28)
    assert torch.equal(stn.family.grid(theta, size, False), _previous_sampling_grid(theta, size))
    previous = F.grid_sample(x, _previous_sampling_grid(theta, size), align_corners=False)
    assert torch.equal(stn(x), previous)
    identity = torch.eye(3)[: theta.shape[1]]
    assert torch.equal(stn.family.identity_distance(theta), (theta - identity).pow(2).sum((1, 2)).mean())


def _identity_grid(size: tuple[int, int, int, int], align_corners: bool, dtype=torch.float64) -> torch.Tensor:
    eye = torch.eye(2, 3, dtype=dtype).expand(size[0], 2, 3)
    return F.affine_grid(eye, list(size), align_corners=align_corners)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", SIZES)
def test_tps_at_rest_is_the_identity_grid(align_corners: bool, size) -> None:
    tps = TRANSFORMS["tps"]
    rest = torch.tensor([tps.identity] * 2, dtype=torch.float64)
    shape = (2, 1, *size)
    torch.testing.assert_close(
        tps.grid(tps.warp(rest), shape, align_corners),
        _identity_grid(shape, align_corners),
        rtol=0,
        atol=1e-12,
    )
    rest32 = rest.float()  # float32, as the model's parameters
    torch.testing.assert_close(
        tps.grid(tps.warp(rest32), shape, align_corners),
        _identity_grid(shape, align_corners, torch.float32),
        rtol=0,
        atol=1e-6,
    )
    assert tps.identity_distance(tps.warp(rest)) == 0


def test_tps_moving_every_point_alike_is_a_translation() -> None:
    tps = TRANSFORMS["tps"]
    offset = torch.tensor([0.1, -0.25], dtype=torch.float64)
    moved = tps.warp(torch.tensor([tps.identity], dtype=torch.float64)) + offset
    shape = (1, 1, 28, 28)
    grid = tps.grid(moved, shape, False)
    torch.testing.assert_close(grid, _identity_grid(shape, False) + offset, rtol=0, atol=1e-12)
    # Sampling through it is affine_grid's translation.
    x = _smooth_images(1, (28, 28)).double()
    translation = torch.tensor([[[1.0, 0.0, 0.1], [0.0, 1.0, -0.25]]], dtype=torch.float64)
    expected = F.grid_sample(
        x, F.affine_grid(translation, list(shape), align_corners=False), align_corners=False
    )
    torch.testing.assert_close(F.grid_sample(x, grid, align_corners=False), expected, rtol=0, atol=1e-12)
    assert tps.identity_distance(moved).item() == pytest.approx(16 * (0.1**2 + 0.25**2))


def test_tps_reproduces_an_affine_map_and_interpolates_its_points() -> None:
    """Control points moved by an affine map give that map's grid; in general the spline passes
    through every predicted point."""
    tps = TRANSFORMS["tps"]
    rows = torch.tensor([[0.9, 0.2, 0.05], [-0.1, 1.1, -0.1]], dtype=torch.float64)
    rest = tps.control
    moved = (rest @ rows[:, :2].T + rows[:, 2]).unsqueeze(0)
    shape = (1, 1, 42, 42)
    expected = F.affine_grid(rows.unsqueeze(0), list(shape), align_corners=False)
    torch.testing.assert_close(tps.grid(moved, shape, False), expected, rtol=0, atol=1e-12)
    torch.manual_seed(0)
    anywhere = rest + 0.1 * torch.randn(16, 2, dtype=torch.float64)
    torch.testing.assert_close(tps_basis(rest, rest) @ anywhere, anywhere, rtol=0, atol=1e-12)


def test_tps_stn_trains_and_keeps_its_gradients() -> None:
    model = build_model(VariantSpec(transform="tps", identity_penalty=1.0), InputShape(size=(28, 28)))
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    assert model.stn.transform(x).shape == (4, 16, 2)
    loss, _ = model.training_loss(x, y)
    loss.backward()
    assert model.stn.fc_loc[-1].weight.grad.abs().sum() > 0  # the spline's grid passes gradients through


def test_tps_cannot_be_composed() -> None:
    with pytest.raises(ValueError, match="'tps' is not a matrix"):
        VariantSpec(transform="tps", iterations=2)
    VariantSpec(transform="tps", iterations=1)


def test_the_schema_names_every_transform_family() -> None:
    """stn.variant names the families without importing model code (the data stages check
    params.yaml with it): the names and which are composable match the registry."""
    from typing import get_args

    from stn.variant import MATRIX_TRANSFORMS, TransformName

    assert set(get_args(TransformName)) == set(TRANSFORMS)
    assert set(MATRIX_TRANSFORMS) == {name for name, family in TRANSFORMS.items() if family.composable}
