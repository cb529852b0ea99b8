"""The STN classifier of the PyTorch STN tutorial, built from a variant spec."""

from __future__ import annotations

import io
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stn.atomic import write_with
from stn.coordconv import CoordConv2d
from stn.single_input_conv import SingleInputConv2d
from stn.variant import VariantSpec

# The identity affine transform, flattened row-major: [[1, 0, 0], [0, 1, 0]].
IDENTITY_THETA = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _conv(spec: VariantSpec, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    if spec.layer == "coordconv":
        return CoordConv2d(in_channels, out_channels, kernel_size, with_radius=spec.coord_radius)
    return nn.Conv2d(in_channels, out_channels, kernel_size)


def _activation(spec: VariantSpec) -> nn.Module:
    if spec.activation == "leakyrelu":
        # negative_slope by keyword: LeakyReLU(True) would mean slope 1 (no nonlinearity).
        return nn.LeakyReLU(negative_slope=spec.negative_slope)
    return nn.ReLU()


class SpatialTransformer(nn.Module):
    """Localization net -> 2x3 affine theta -> resampled input."""

    def __init__(self, spec: VariantSpec) -> None:
        super().__init__()
        self.align_corners = spec.align_corners
        self.localization = nn.Sequential(
            _conv(spec, 1, 8, 7),
            nn.MaxPool2d(2, stride=2),
            _activation(spec),
            _conv(spec, 8, 10, 5),
            nn.MaxPool2d(2, stride=2),
            _activation(spec),
        )
        self.fc_loc = nn.Sequential(nn.Linear(10 * 3 * 3, 32), _activation(spec), nn.Linear(32, 6))
        # Start from the identity transform so early training sees the unwarped digit.
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor(IDENTITY_THETA))

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        features = self.localization(x).flatten(1)
        return self.fc_loc(features).view(-1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=self.align_corners)
        return F.grid_sample(x, grid, align_corners=self.align_corners)


class Classifier(nn.Module):
    """The tutorial's LeNet-style classifier; returns log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        # nn.Conv2d(1, 10, 5) with a faster input gradient (it feeds the STN's gradient).
        self.conv1 = SingleInputConv2d(10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(320, 50)
        self.fc2 = nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.dropout(x, training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


class STNClassifier(nn.Module):
    """Optional spatial transformer followed by the classifier."""

    def __init__(self, spec: VariantSpec) -> None:
        super().__init__()
        self.spec = spec
        self.stn = SpatialTransformer(spec) if spec.stn else None
        self.classifier = Classifier()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier sees: the STN's output, or the input itself for a plain CNN."""
        return self.stn(x) if self.stn is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(x))


def build_model(spec: VariantSpec) -> STNClassifier:
    """The one model builder of the study: every variant comes from here."""
    return STNClassifier(spec)


def save_model(model: STNClassifier, path: Path) -> None:
    """Weights plus the spec that rebuilds the architecture, written atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"spec": model.spec.model_dump(), "state_dict": state}
    # Through a buffer: torch.save names its zip folder after the file, and the temporary
    # file's random name would make two saves of the same weights differ byte for byte.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_with(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def load_model(path: Path, device: torch.device | str = "cpu") -> STNClassifier:
    payload = torch.load(path, map_location=device, weights_only=True)
    model = build_model(VariantSpec(**payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device)
