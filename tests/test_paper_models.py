"""The STN paper's distorted-MNIST models (Jaderberg et al. 2015, Table 1): sizes, matching, ideas on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import ROOT
from torch import nn

from stn.models import paper
from stn.models.builder import InputShape, build_model, count_parameters, load_model, save_model
from stn.params.run import TrainParams
from stn.training.loop import train_step
from stn.training.optim import build_optimizer, set_lr
from stn.variant import VariantSpec

VARIANTS = yaml.safe_load((ROOT / "params.yaml").read_text())["variants"]
SIDES = [28, 42]
# Table 1's models: the CNN and the ST-CNN with each transform family.
MODELS = {
    "cnn": {"stn": False},
    "st-affine": {"transform": "affine"},
    "st-projective": {"transform": "projective"},
    "st-tps": {"transform": "tps"},
}
# (parameters, classifier filters) per model and input side; the CNN is each experiment's target.
EXPECTED = {
    28: {
        "cnn": (105610, (32, 64)),
        "st-affine": (105013, (32, 57)),
        "st-projective": (105055, (32, 57)),
        "st-tps": (105559, (32, 57)),
    },
    42: {
        "cnn": (126090, (32, 64)),
        "st-affine": (126369, (32, 71)),
        "st-projective": (126731, (32, 71)),
        "st-tps": (126338, (32, 68)),
    },
}


def _paper(side: int, **fields) -> nn.Module:
    return build_model(VariantSpec(architecture="paper", **fields), InputShape(size=(side, side)))


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_parameter_counts(name: str, side: int) -> None:
    model = _paper(side, **MODELS[name])
    x = torch.randn(3, 1, side, side)
    out = model(x)
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))  # log-probabilities
    parameters, filters = EXPECTED[side][name]
    assert count_parameters(model) == parameters and model.classifier.filters == filters
    seen = side if model.stn is None or side == 28 else side // 2  # RTS: the transformer's output pooled 2x
    assert model.transform(x).shape == (3, 1, seen, seen)
    assert paper.classifier_parameters((seen, seen), filters, 10) == count_parameters(model.classifier)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("name", [n for n in MODELS if n != "cnn"])
def test_st_cnns_match_the_cnns_parameters(name: str, side: int) -> None:
    cnn = count_parameters(_paper(side, stn=False))
    st = count_parameters(_paper(side, **MODELS[name]))
    assert abs(st - cnn) <= paper.MATCH_TOLERANCE * cnn
    assert abs(st - cnn) <= 0.01 * cnn  # what the chosen sizes achieve today


def test_cnn_layers_are_the_papers() -> None:
    cnn = _paper(28, stn=False).classifier
    assert cnn.conv1.kernel_size == (9, 9) and cnn.conv2.kernel_size == (7, 7)
    assert cnn.fc.in_features == 64 * 2 * 2  # 28 -> conv 20 -> pool 10 -> conv 4 -> pool 2
    assert _paper(42, stn=False).classifier.fc.in_features == 64 * 6 * 6  # 42 -> 34 -> 17 -> 11 -> 6
    assert paper.classifier_feature_side(21) == 1  # RTS's pooled output: 21 -> 13 -> 7 -> 1 -> 1
    with pytest.raises(ValueError, match="at least 21x21"):
        paper.PaperClassifier((20, 20))


@pytest.mark.parametrize("side", SIDES)
def test_localisation_net_is_the_papers(side: int) -> None:
    stn = _paper(side, transform="affine").stn
    layers = list(stn.localization)
    assert isinstance(layers[0], nn.MaxPool2d) and layers[0].kernel_size == 2  # on the input downsampled 2x
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (1, 20, (5, 5)),
        (20, 20, (5, 5)),
    ]
    assert sum(isinstance(m, nn.MaxPool2d) for m in layers) == 3 and len(stn.fc_loc) == 1
    head = stn.fc_loc[-1]
    assert head.in_features == 20 * (1 if side == 28 else 9) and head.out_features == 6
    assert torch.equal(head.weight, torch.zeros_like(head.weight))
    assert torch.equal(head.bias, torch.tensor([1.0, 0, 0, 0, 1.0, 0]))


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("transform", ["affine", "projective", "tps"])
def test_paper_stn_starts_at_the_identity(transform: str, side: int) -> None:
    model = _paper(side, transform=transform).eval()
    x = F.avg_pool2d(torch.randn(2, 1, side, side), 5, stride=1, padding=2)
    expected = x if side == 28 else F.avg_pool2d(x, 2)
    torch.testing.assert_close(model.transform(x), expected, rtol=0, atol=1e-5)


def test_rts_output_pool_is_derived_or_given() -> None:
    rts = _paper(42, transform="affine").stn
    assert rts.grid_size == (42, 42) and rts.pool == 2 and rts.out_size == (21, 21)
    assert _paper(28, transform="affine").stn.pool == 1
    unpooled = _paper(42, transform="affine", output_pool=1)
    assert unpooled.stn.out_size == (42, 42) and unpooled(torch.randn(2, 1, 42, 42)).shape == (2, 10)
    crop = _paper(42, transform="affine", output_size=(28, 28))  # a 28x28 crop is not pooled
    assert crop.stn.pool == 1 and crop.transform(torch.randn(2, 1, 42, 42)).shape == (2, 1, 28, 28)
    tutorial = build_model(VariantSpec(), InputShape(size=(42, 42)))
    assert tutorial.stn.pool == 1 and tutorial.stn.out_size == (42, 42)  # the tutorial's never pools
    with pytest.raises(ValueError, match="stn: false cannot set them"):
        VariantSpec(architecture="paper", stn=False, output_pool=2)


def test_paper_architecture_refuses_a_coordconv_classifier() -> None:
    with pytest.raises(ValueError, match="classifier_layer must be conv"):
        VariantSpec(architecture="paper", classifier_layer="coordconv")


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("idea", ["stn-loclr", "stn-ic-loclr"])
def test_ideas_rebuilt_on_the_papers_localisation_net(idea: str, side: int) -> None:
    raw = {k: v for k, v in VARIANTS[idea].items() if k != "output_size"} | {"architecture": "paper"}
    spec = VariantSpec(**raw)
    model = build_model(spec, InputShape(size=(side, side)))
    cnn = count_parameters(_paper(side, stn=False))
    assert abs(count_parameters(model) - cnn) <= paper.MATCH_TOLERANCE * cnn
    params = TrainParams(lr=0.01, momentum=0.9)
    optimizer = build_optimizer(model, params)
    set_lr(optimizer, params, 1)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.01])  # loc_lr_scale 0.1
    assert optimizer.param_groups[0]["params"] == list(model.stn.parameters())
    x, y = torch.randn(4, 1, side, side), torch.tensor([0, 1, 2, 3])
    theta = model.stn.transform(x)
    assert theta.shape == ((4, 3, 3) if spec.iterations > 1 else (4, 2, 3))
    head, classifier = model.stn.fc_loc[-1].weight, model.classifier.fc.weight
    before = head.detach().clone(), classifier.detach().clone()
    loss, _ = train_step(model, optimizer, x, y)
    assert torch.isfinite(loss)
    # The first step moves the localisation head (its convs get no gradient through its zero weights).
    assert not torch.equal(head, before[0]) and not torch.equal(classifier, before[1])


def test_inverse_compositional_paper_stn_composes_its_updates() -> None:
    torch.manual_seed(1)
    model = _paper(42, iterations=2).double()
    for p in model.stn.parameters():
        p.data.add_(0.02 * torch.randn_like(p))
    stn, x = model.stn, torch.randn(2, 1, 42, 42, dtype=torch.float64)
    first = stn.family.matrix(stn.predict(x))
    second = stn.family.matrix(stn.predict(stn.sample(x, first, x.shape)))
    torch.testing.assert_close(stn.transform(x), first @ second)
    pooled = F.avg_pool2d(stn.sample(x, first @ second, x.shape), 2)
    torch.testing.assert_close(model.transform(x), pooled)


@pytest.mark.parametrize(("side", "fields"), [(42, {"transform": "affine"}), (28, {"transform": "tps"})])
def test_save_and_load_round_trip(tmp_path, side: int, fields: dict) -> None:
    torch.manual_seed(0)
    shape = InputShape(size=(side, side), background=-0.4242)
    model = build_model(VariantSpec(architecture="paper", padding="background", **fields), shape)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.spec == model.spec and loaded.shape == shape
    assert loaded.classifier.filters == model.classifier.filters
    x = torch.randn(3, 1, side, side)
    assert torch.equal(loaded.eval()(x), model.eval()(x))
