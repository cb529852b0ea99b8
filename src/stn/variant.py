"""The variant spec: what one model of the study is made of.

One spec drives one model builder (`stn.models.builder.build_model`), so new variants are
new values here, not new code paths in the stages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

# The transform families of stn.models.transforms.TRANSFORMS, named here so that the schema (and
# the data stages that check params.yaml) need no model code; a test keeps the two in step.
MATRIX_TRANSFORMS = ("attention", "similarity", "affine", "projective")  # 3x3 warps: composable
TransformName = Literal["attention", "similarity", "affine", "projective", "tps"]


class VariantSpec(BaseModel):
    """Architecture of one variant; every field has the tutorial's value as default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stn: bool = Field(True, description="put a spatial transformer in front of the classifier")
    architecture: Literal["tutorial", "paper"] = Field(
        "tutorial",
        description="the PyTorch tutorial's small nets, or the STN paper's distorted-MNIST CNN and "
        "localisation net, param-matched (stn.models.paper)",
    )
    layer: Literal["conv", "coordconv"] = Field("conv", description="conv layers of the localization net")
    # "identity" is what the original study's nn.LeakyReLU(True) computed: slope 1, no nonlinearity.
    activation: Literal["relu", "leakyrelu", "identity"] = Field(
        "relu", description="activation of the localization net"
    )
    negative_slope: float = Field(
        0.01, gt=0.0, lt=1.0, description="Leaky ReLU slope; 1 would make it linear"
    )
    coord_radius: bool = Field(False, description="CoordConv also adds a radius channel")
    classifier_layer: Literal["conv", "coordconv"] = Field(
        "conv", description="conv layers of the classifier (the original study's early CoordConv runs)"
    )
    align_corners: bool = Field(False, description="affine_grid/grid_sample convention")
    transform: TransformName = Field("affine", description="the transform family the STN predicts")
    output_size: tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="(height, width) of the STN's output grid; none: the input's size"
    )
    iterations: PositiveInt = Field(
        1, description="inverse-compositional steps of the one localization net (1: a plain STN)"
    )
    output_pool: PositiveInt | None = Field(
        None,
        description="average-pool the STN's output by this factor before the classifier; none: 2 for the "
        "paper architecture on outputs larger than 28x28 (RTS's 42x42, as the paper), else 1",
    )
    padding: Literal["zeros", "background"] = Field(
        "zeros", description="what the STN reads outside the image: 0, or the images' background value"
    )
    loc_lr_scale: float = Field(
        1.0, gt=0.0, le=1.0, description="the localization net's learning rate as a fraction of train.lr"
    )
    identity_penalty: float = Field(
        0.0, ge=0.0, description="weight of a loss term keeping the transform near the identity"
    )
    identity_penalty_epochs: PositiveInt | None = Field(
        None, description="epochs over which the identity penalty fades linearly to 0; none: constant"
    )
    augment: bool = Field(
        False, description="re-draw the dataset's distortion for every training image in every epoch"
    )

    def identity_weight(self, epoch: int) -> float:
        """The identity penalty's weight in (1-based) `epoch`: full at first, then fading if asked."""
        if self.identity_penalty_epochs is None:
            return self.identity_penalty
        return self.identity_penalty * max(0.0, 1.0 - (epoch - 1) / self.identity_penalty_epochs)

    @model_validator(mode="after")
    def _stn_settings_need_an_stn(self) -> VariantSpec:
        stn_only = (
            "layer",
            "activation",
            "negative_slope",
            "coord_radius",
            "align_corners",
            "transform",
            "output_size",
            "output_pool",
            "iterations",
            "padding",
            "loc_lr_scale",
            "identity_penalty",
            "identity_penalty_epochs",
        )
        changed = [n for n in stn_only if getattr(self, n) != type(self).model_fields[n].default]
        if not self.stn and changed:
            raise ValueError(
                f"{', '.join(stn_only)} configure the spatial transformer; "
                "a variant with stn: false cannot set them"
            )
        if self.iterations > 1 and self.transform not in MATRIX_TRANSFORMS:
            raise ValueError(
                f"iterations: {self.iterations} composes the transforms as 3x3 matrices (inverse "
                f"compositional STN); transform {self.transform!r} is not a matrix: use iterations: 1"
            )
        if self.architecture == "paper" and self.classifier_layer != "conv":
            raise ValueError(
                "architecture: paper has the paper's conv classifier; classifier_layer must be conv"
            )
        return self
