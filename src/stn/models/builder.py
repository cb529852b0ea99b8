"""The one model builder of the study: spec + input shape -> module; save and load."""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stn.atomic import write_with
from stn.models.classifier import Classifier
from stn.models.localization import SpatialTransformer
from stn.models.paper import CNN_FILTERS, PaperClassifier, matched_filters
from stn.variant import VariantSpec


@dataclass(frozen=True)
class InputShape:
    """What a model needs to know of its dataset (read from the dataset's meta.json)."""

    size: tuple[int, int] = (28, 28)
    classes: int = 10
    background: float = 0.0  # the normalised value of a black pixel: what "outside the image" is

    @classmethod
    def from_dict(cls, raw: dict) -> InputShape:
        return cls(size=tuple(raw["size"]), classes=int(raw["classes"]), background=float(raw["background"]))

    @classmethod
    def of(cls, meta) -> InputShape:
        """From a dataset's meta (`stn.datasets.store.DatasetMeta`, not imported: models need no
        dataset code): its image size, classes and the normalised value of a black pixel."""
        return cls(size=tuple(meta.size), classes=int(meta.classes), background=meta.normalization.background)


class STNClassifier(nn.Module):
    """Optional spatial transformer, then the classifier: (N, C, H, W) -> (N, classes) log-probabilities.

    The tutorial's classifier, or with `architecture: paper` the STN paper's CNN (stn.models.paper),
    whose width an ST-CNN matches to the parameter count of the CNN on the same input.
    """

    def __init__(self, spec: VariantSpec, shape: InputShape = InputShape()) -> None:
        super().__init__()
        self.spec, self.shape = spec, shape
        self.trained_on = "cpu"  # the device type its weights were trained on: see save_model
        self.stn = SpatialTransformer(spec, shape.size, background=shape.background) if spec.stn else None
        classifier_size = self.stn.out_size if self.stn is not None else shape.size
        if spec.architecture == "paper":
            filters = CNN_FILTERS
            if self.stn is not None:
                filters = matched_filters(
                    shape.size, classifier_size, shape.classes, count_parameters(self.stn)
                )
            self.classifier: nn.Module = PaperClassifier(classifier_size, shape.classes, filters)
        else:
            self.classifier = Classifier(classifier_size, shape.classes, spec.classifier_layer)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier sees: the STN's output, or the input itself for a plain CNN."""
        return self.stn(x) if self.stn is not None else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(x))

    def training_loss(
        self, x: torch.Tensor, y: torch.Tensor, epoch: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss to minimise in (1-based) `epoch` and the log-probabilities: NLL, plus any
        auxiliary term."""
        weight = self.spec.identity_weight(epoch)
        if self.stn is None or weight == 0:
            output = self(x)
            return F.nll_loss(output, y), output
        theta = self.stn.transform(x)
        output = self.classifier(self.stn.resample(x, theta))
        # Mean squared distance of the predicted transform from the identity.
        penalty = self.stn.family.identity_distance(theta)
        return F.nll_loss(output, y) + weight * penalty, output


def build_model(spec: VariantSpec, shape: InputShape = InputShape()) -> STNClassifier:
    """Every variant of the study comes from here."""
    return STNClassifier(spec, shape)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_model(model: STNClassifier, path: Path, trained_on: str = "cpu") -> None:
    """Weights plus the spec and input shape that rebuild the architecture, written atomically.
    `trained_on`: the device types the weights were trained on ("cpu", "cuda", or "cpu+cuda" for
    a run resumed on another device: training.loop.Trainer.trained_on), which load_model
    gives back as `model.trained_on`; CUDA rounds differently, so its runs must not pass for CPU
    runs. Stored only when not "cpu", so that CPU-trained files keep their bytes."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    shape = asdict(model.shape) | {"size": list(model.shape.size)}
    payload = {"spec": model.spec.model_dump(mode="json"), "input": shape, "state_dict": state}
    if trained_on != "cpu":
        payload["trained_on"] = trained_on
    # Through a buffer: torch.save names its zip folder after the file, and the temporary
    # file's random name would make two saves of the same weights differ byte for byte.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_with(path, lambda tmp: tmp.write_bytes(buffer.getvalue()))


def load_model(path: Path, device: torch.device | str = "cpu") -> STNClassifier:
    payload = torch.load(path, map_location=device, weights_only=True)
    shape = InputShape.from_dict(payload["input"]) if "input" in payload else InputShape()
    model = build_model(VariantSpec(**payload["spec"]), shape)
    model.load_state_dict(payload["state_dict"])
    model.trained_on = payload.get("trained_on", "cpu")  # see save_model
    return model.to(device)
