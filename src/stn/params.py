"""The schema of params.yaml: every key checked before any training starts."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from stn.errors import ParamsError
from stn.variant import VariantSpec

VARIANT_NAME = r"^[a-z0-9][a-z0-9_-]*$"


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# A finite float; YAML's `true` is not 1.0 here.
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Strict):
    train_count: StrictInt = Field(60000, gt=0, description="images expected in the train split")
    test_count: StrictInt = Field(10000, gt=0, description="images expected in the test split")


class TrainParams(_Strict):
    epochs: StrictInt = Field(50, gt=0)
    batch_size: StrictInt = Field(64, gt=0)
    lr: Number = Field(0.01, gt=0)
    momentum: Number = Field(0.0, ge=0, lt=1)
    # Results depend on the thread count (reduction order), so it is a tracked param.
    threads: StrictInt = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = True


class EvaluateParams(_Strict):
    batch_size: StrictInt = Field(1000, gt=0)
    stn_images: StrictInt = Field(32, gt=0, description="test images shown in stn.png")


class CompareParams(_Strict):
    baseline: str = Field("stn-conv", description="the variant every other one is compared with")


class StudyParams(_Strict):
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    seeds: Annotated[list[StrictInt], Field(min_length=1)] = [0, 1, 2]
    variants: Annotated[dict[str, VariantSpec], Field(min_length=1)]
    compare: CompareParams = CompareParams()

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative, got {seeds}")
        return seeds

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, variants: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        for name in variants:
            if not re.match(VARIANT_NAME, name):
                raise ValueError(f"variant name {name!r} must be lower-case letters, digits, '-' or '_'")
        return variants

    @model_validator(mode="after")
    def _baseline_exists(self) -> StudyParams:
        if self.compare.baseline not in self.variants:
            raise ValueError(
                f"compare.baseline {self.compare.baseline!r} is not a variant; "
                f"defined: {', '.join(self.variants)}"
            )
        return self

    def variant(self, name: str) -> VariantSpec:
        if name not in self.variants:
            raise ParamsError(f"variants.{name}: no such variant; defined: {', '.join(self.variants)}")
        return self.variants[name]


def _known_keys(loc: tuple) -> list[str]:
    """The valid key names beside the last part of `loc`, for 'did you mean' hints."""
    model: type[BaseModel] = StudyParams
    parts = [str(p) for p in loc[:-1]]
    i = 0
    while i < len(parts):
        if model is StudyParams and parts[i] == "variants":
            model, i = VariantSpec, i + 2  # skip the variant's own name
            continue
        annotation = model.model_fields[parts[i]].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model, i = annotation, i + 1
    return list(model.model_fields)


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid parameters:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            choices = _known_keys(loc)
            close = difflib.get_close_matches(str(loc[-1]), choices, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            if choices:
                message += f"; valid keys: {', '.join(choices)}"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> StudyParams:
    """Validate a params mapping; the error message lists every bad key by its path."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return StudyParams.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source)) from None


def load_params(path: Path | str = "params.yaml") -> StudyParams:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: not found; run from the project root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
