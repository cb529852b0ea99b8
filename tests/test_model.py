"""CoordConv and the model builder."""

from __future__ import annotations

import pytest
import torch
import yaml
from conftest import ROOT
from torch import nn

from stn.models.builder import InputShape, build_model, load_model, save_model
from stn.models.coordconv import AddCoords, CoordConv2d
from stn.variant import VariantSpec

VARIANTS = yaml.safe_load((ROOT / "params.yaml").read_text())["variants"]


def test_addcoords_values() -> None:
    x = torch.zeros(2, 1, 3, 5)
    out = AddCoords()(x)
    assert out.shape == (2, 3, 3, 5)
    xs, ys = out[0, 1], out[0, 2]
    torch.testing.assert_close(xs[0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))  # x varies along width
    torch.testing.assert_close(ys[:, 0], torch.tensor([-1.0, 0.0, 1.0]))  # y varies along height
    assert torch.equal(xs[0], xs[2]) and torch.equal(ys[:, 0], ys[:, 4])


def test_addcoords_radius_centred_at_zero() -> None:
    out = AddCoords(with_radius=True)(torch.zeros(1, 1, 5, 5))
    radius = out[0, 3]
    assert radius[2, 2] == 0  # image centre
    torch.testing.assert_close(radius[0, 0], torch.tensor(2.0).sqrt())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_addcoords_keeps_dtype(dtype: torch.dtype) -> None:
    out = AddCoords(with_radius=True)(torch.zeros(1, 2, 4, 4, dtype=dtype))
    assert out.dtype == dtype


def test_addcoords_follows_device() -> None:
    # "meta" stands in for any non-CPU device: nothing may be created on the CPU.
    out = AddCoords()(torch.zeros(1, 1, 4, 4, device="meta"))
    assert out.device.type == "meta" and out.shape == (1, 3, 4, 4)
    if torch.cuda.is_available():
        assert AddCoords()(torch.zeros(1, 1, 4, 4, device="cuda")).is_cuda


def test_coordconv_has_no_unused_parameters() -> None:
    layer = CoordConv2d(1, 8, 7)
    names = [n for n, _ in layer.named_parameters()]
    assert names == ["conv.weight", "conv.bias"]
    assert layer.conv.weight.shape == (8, 3, 7, 7)
    out = layer(torch.randn(2, 1, 28, 28))
    out.sum().backward()
    assert all(p.grad is not None for p in layer.parameters())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_builds_and_classifies(name: str) -> None:
    model = build_model(VariantSpec(**VARIANTS[name]))
    out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(5))  # log-probabilities
    assert model.transform(torch.randn(5, 1, 28, 28)).shape == (5, 1, 28, 28)


def test_parameter_counts() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(build_model(VariantSpec(stn=False))) == 21840
    assert count(build_model(VariantSpec())) == 21840 + 400 + 2010 + 2912 + 198  # 27360, as the tutorial
    # CoordConv adds two input channels to each localization conv: 8*2*49 + 10*2*25 weights.
    assert count(build_model(VariantSpec(layer="coordconv"))) == count(build_model(VariantSpec())) + 784 + 500


@pytest.mark.parametrize("spec", [VariantSpec(), VariantSpec(layer="coordconv", activation="leakyrelu")])
def test_identity_initialised_stn_returns_input(spec: VariantSpec) -> None:
    model = build_model(spec).eval()
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(model.transform(x), x, atol=1e-5, rtol=1e-5)  # float32 bilinear weights
    expected = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3)
    torch.testing.assert_close(model.stn.transform(x), expected)


def test_leaky_relu_has_real_slope() -> None:
    model = build_model(VariantSpec(activation="leakyrelu", negative_slope=0.01))
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 3 and all(a.negative_slope == 0.01 for a in acts)
    assert not any(isinstance(m, nn.ReLU) for m in model.stn.modules())


def test_cnn_has_no_stn() -> None:
    model = build_model(VariantSpec(stn=False))
    x = torch.randn(2, 1, 28, 28)
    assert model.stn is None and torch.equal(model.transform(x), x)


def test_save_and_load(tmp_path) -> None:
    model = build_model(VariantSpec(layer="coordconv"))
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spec == model.spec and loaded.shape == InputShape()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def test_save_and_load_keep_the_training_device(tmp_path) -> None:
    model = build_model(VariantSpec())
    save_model(model, tmp_path / "cpu.pt")
    save_model(model, tmp_path / "cuda.pt", trained_on="cuda")
    # CPU-trained files keep their bytes: no key for the default
    assert "trained_on" not in torch.load(tmp_path / "cpu.pt", weights_only=True)
    assert load_model(tmp_path / "cpu.pt").trained_on == "cpu" and model.trained_on == "cpu"
    assert load_model(tmp_path / "cuda.pt").trained_on == "cuda"


def test_save_and_load_keep_the_input_shape(tmp_path) -> None:
    shape = InputShape(size=(42, 42), classes=10, background=-0.4242)
    model = build_model(VariantSpec(output_size=(28, 28), padding="background"), shape)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.shape == shape and loaded.stn.background == pytest.approx(-0.4242)
    x = torch.randn(2, 1, 42, 42)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_takes_a_larger_canvas(name: str) -> None:
    """On 42x42 inputs (rts) the STN samples a 28x28 crop when output_size says so."""
    spec = VariantSpec(**VARIANTS[name])
    model = build_model(spec, InputShape(size=(42, 42)))
    x = torch.randn(3, 1, 42, 42)
    assert model(x).shape == (3, 10)
    side = spec.output_size[0] if spec.stn and spec.output_size else 42
    if spec.stn and spec.architecture == "paper":
        side //= 2  # the paper's RTS model average-pools the transformer's 42x42 output
    assert model.transform(x).shape == (3, 1, side, side)


def test_background_padding_fills_outside_with_the_background() -> None:
    background = -0.4242  # a black pixel after the tutorial's normalisation
    model = build_model(VariantSpec(padding="background"), InputShape(background=background)).eval()
    with torch.no_grad():  # zoom out: the corners of the output read outside the input
        model.stn.fc_loc[2].bias.copy_(torch.tensor([2.0, 0, 0, 0, 2.0, 0]))
    out = model.transform(torch.full((1, 1, 28, 28), background))
    torch.testing.assert_close(out, torch.full_like(out, background))


def test_identity_penalty_adds_to_the_loss() -> None:
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    plain = build_model(VariantSpec()).eval()
    torch.manual_seed(0)
    penalised = build_model(VariantSpec(identity_penalty=0.5)).eval()
    with torch.no_grad():
        for model in (plain, penalised):
            model.stn.fc_loc[2].bias.add_(torch.tensor([0.1, 0, 0, 0, 0, 0]))  # away from the identity
        loss_plain, out_plain = plain.training_loss(x, y)
        loss_pen, out_pen = penalised.training_loss(x, y)
    torch.testing.assert_close(out_pen, out_plain)
    torch.testing.assert_close(loss_pen, loss_plain + 0.5 * 0.1**2)


def test_save_is_byte_reproducible(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(VariantSpec())
    save_model(model, tmp_path / "a.pt")
    save_model(model, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


@pytest.mark.parametrize("with_radius", [False, True])
@pytest.mark.parametrize("in_channels", [1, 8])
def test_coordconv_equals_convolving_the_concatenation(with_radius: bool, in_channels: int) -> None:
    # CoordConv2d convolves the coordinate planes once per batch; it must stay the same
    # function as an ordinary conv over [input, coordinates], gradients included.
    torch.manual_seed(0)
    layer = CoordConv2d(in_channels, 6, 5, with_radius=with_radius, padding=2).double()
    x = torch.randn(3, in_channels, 11, 9, dtype=torch.float64, requires_grad=True)
    fast = layer(x)
    slow = layer.conv(layer.add_coords(x))
    torch.testing.assert_close(fast, slow)
    grads_fast = torch.autograd.grad(fast.square().sum(), [x, *layer.parameters()])
    grads_slow = torch.autograd.grad(slow.square().sum(), [x, *layer.parameters()])
    for a, b in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(a, b)


def test_coordconv_with_groups_falls_back_to_concatenation() -> None:
    layer = CoordConv2d(1, 3, 3, groups=3)  # 1 + 2 coordinate channels = 3 groups of one
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(layer(x), layer.conv(layer.add_coords(x)))


def _tutorial_parameters(loc: str | None, n_params: int = 6, classifier: str = "conv") -> list[tuple]:
    """Parameter names and shapes of a tutorial-architecture model on 28x28 inputs, in state_dict order."""
    stn = []
    if loc is not None:
        c = ".conv" if loc == "coordconv" else ""
        extra = 2 if loc == "coordconv" else 0
        stn = [
            (f"stn.localization.0{c}.weight", (8, 1 + extra, 7, 7)),
            (f"stn.localization.0{c}.bias", (8,)),
            (f"stn.localization.3{c}.weight", (10, 8 + extra, 5, 5)),
            (f"stn.localization.3{c}.bias", (10,)),
            ("stn.fc_loc.0.weight", (32, 90)),
            ("stn.fc_loc.0.bias", (32,)),
            ("stn.fc_loc.2.weight", (n_params, 32)),
            ("stn.fc_loc.2.bias", (n_params,)),
        ]
    c, extra = (".conv", 2) if classifier == "coordconv" else ("", 0)
    return stn + [
        (f"classifier.conv1{c}.weight", (10, 1 + extra, 5, 5)),
        (f"classifier.conv1{c}.bias", (10,)),
        (f"classifier.conv2{c}.weight", (20, 10 + extra, 5, 5)),
        (f"classifier.conv2{c}.bias", (20,)),
        ("classifier.fc1.weight", (50, 320)),
        ("classifier.fc1.bias", (50,)),
        ("classifier.fc2.weight", (10, 50)),
        ("classifier.fc2.bias", (10,)),
    ]


# Every params.yaml variant as the builder of commit e365d83 (before the paper's models) made it
# with torch.manual_seed(0) on 28x28 inputs: its parameters, and the sum of |every entry| (its init).
TUTORIAL_VARIANTS = {
    "cnn": (_tutorial_parameters(None), 668.110508),
    "cnn-aug": (_tutorial_parameters(None), 668.110508),
    "stn-attention": (_tutorial_parameters("conv", 3), 921.066302),
    "stn-similarity": (_tutorial_parameters("conv", 4), 921.746953),
    "stn-projective": (_tutorial_parameters("conv", 8), 921.426343),
    "stn-coordconv-cls": (_tutorial_parameters("coordconv", classifier="coordconv"), 982.019545),
    **{
        name: (_tutorial_parameters("coordconv"), 950.248778)
        for name in ("stn-coordconv", "stn-coordconv-leakyrelu", "stn-coordconv-linear")
    },
    **{
        name: (_tutorial_parameters("conv"), 921.72903)
        for name in ("stn-conv", "stn-conv-leakyrelu", "stn-bgpad", "stn-loclr", "stn-ic", "stn-ic-loclr")
        + ("stn-idpen",)
    },
}


@pytest.mark.parametrize(
    "name", sorted(v for v, spec in VARIANTS.items() if spec.get("architecture", "tutorial") == "tutorial")
)
def test_tutorial_variants_build_as_before(name: str) -> None:
    """The paper's architecture left every existing variant's parameters and initialisation alone."""
    expected, magnitude = TUTORIAL_VARIANTS[name]
    torch.manual_seed(0)
    state = build_model(VariantSpec(**VARIANTS[name])).state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected
    total = sum(float(v.double().abs().sum()) for v in state.values())
    assert total == pytest.approx(magnitude, abs=2e-6)
