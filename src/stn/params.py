"""The schema of params.yaml: every key checked before any training starts."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from stn.datasets.distortions.registry import DISTORTIONS, DistortionSpec
from stn.errors import ParamsError
from stn.variant import VariantSpec

NAME = r"^[a-z0-9][a-z0-9_-]*$"


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# A finite float; YAML's `true` is not 1.0 here.
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MnistParams(_Strict):
    train_count: StrictInt = Field(60000, gt=0, description="images expected in the train split")
    test_count: StrictInt = Field(10000, gt=0, description="images expected in the test split")


class TrainParams(_Strict):
    epochs: StrictInt = Field(50, gt=0)
    batch_size: StrictInt = Field(64, gt=0)
    lr: Number = Field(0.01, gt=0)
    momentum: Number = Field(0.0, ge=0, lt=1)
    schedule: Literal["constant", "cosine"] = Field(
        "constant", description="learning rate over the epochs: constant, or cosine decay to 0"
    )
    # Results depend on the thread count (reduction order), so it is a tracked param.
    threads: StrictInt = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = True


class TrainOverrides(_Strict):
    """A dataset's own training budget: any key given here replaces the train section's."""

    epochs: StrictInt | None = Field(None, gt=0)
    batch_size: StrictInt | None = Field(None, gt=0)
    lr: Number | None = Field(None, gt=0)
    momentum: Number | None = Field(None, ge=0, lt=1)
    schedule: Literal["constant", "cosine"] | None = None


class NormalizationParams(_Strict):
    mean: Number
    std: Number = Field(gt=0)


class DatasetSpec(_Strict):
    """A source plus an optional distortion; prepare@NAME derives everything else."""

    source: Literal["mnist"] = "mnist"
    distortion: DistortionSpec | None = None
    seed: StrictInt = Field(0, ge=0, description="draws the distortions; train, val and test independently")
    validation: StrictInt = Field(
        5000, ge=0, description="the last N training images, held out for every development choice"
    )
    normalization: NormalizationParams | None = Field(
        None, description="fixed mean/std; none: computed on the dataset's own training split"
    )
    train: TrainOverrides = TrainOverrides()


def _unique_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {seeds}")
    return seeds


Seeds = Annotated[list[StrictInt], AfterValidator(_unique_seeds)]


class ExtraSeeds(_Strict):
    """More seeds for a few of a study's variants (those a headline rests on), on all its datasets."""

    variants: list[str]
    seeds: Seeds

    @model_validator(mode="after")
    def _both_or_neither(self) -> ExtraSeeds:
        if bool(self.variants) != bool(self.seeds):
            raise ValueError("give both variants and seeds, or neither")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants must be distinct, got {self.variants}")
        return self


class StudySpec(_Strict):
    """Which variants run on which datasets, with which seeds: one run per combination."""

    datasets: Annotated[list[str], Field(min_length=1)]
    variants: Annotated[list[str], Field(min_length=1)]
    seeds: Annotated[list[StrictInt], Field(min_length=1), AfterValidator(_unique_seeds)] = [0, 1, 2]
    rotation_curve: list[str] = Field(
        [], description="datasets of the study whose runs are also tested on upright digits rotated 0..180"
    )
    extra_seeds: ExtraSeeds = ExtraSeeds(variants=[], seeds=[])

    @model_validator(mode="after")
    def _extra_seeds_fit(self) -> StudySpec:
        for variant in self.extra_seeds.variants:
            if variant not in self.variants:
                raise ValueError(f"extra_seeds: variant {variant!r} is not among the study's variants")
        if overlap := sorted(set(self.extra_seeds.seeds) & set(self.seeds)):
            raise ValueError(f"extra_seeds: seeds {overlap} are already the study's seeds")
        return self

    def seeds_for(self, variant: str) -> list[int]:
        """The seeds `variant` runs with: the study's, and its extra seeds if it has them."""
        return self.seeds + (self.extra_seeds.seeds if variant in self.extra_seeds.variants else [])


class Studies(_Strict):
    upright: StudySpec
    distorted: StudySpec

    @field_validator("upright")
    @classmethod
    def _one_upright_dataset(cls, study: StudySpec) -> StudySpec:
        if len(study.datasets) != 1:
            raise ValueError(f"the upright study runs on exactly one dataset, got {study.datasets}")
        if study.extra_seeds.variants:  # dvc.yaml has no extra-seed stages for it
            raise ValueError("extra_seeds: only the distorted study has them; give every variant the seeds")
        return study

    @field_validator("distorted")
    @classmethod
    def _extra_seeds_stated(cls, study: StudySpec) -> StudySpec:
        if "extra_seeds" not in study.model_fields_set:  # dvc.yaml's extra-seed stages read it
            raise ValueError("extra_seeds: required (variants: [], seeds: [] for none)")
        return study


class RotationCurveParams(_Strict):
    step: StrictInt = Field(15, gt=0, le=180, description="degrees between test rotations, 0..180")


class EvaluateParams(_Strict):
    batch_size: StrictInt = Field(1000, gt=0)
    stn_images: StrictInt = Field(32, gt=0, description="test images shown in stn.png")
    rotation_curve: RotationCurveParams = RotationCurveParams()


class CompareParams(_Strict):
    baseline: str = Field("stn-conv", description="the variant every other one is compared with")


class StudyParams(_Strict):
    mnist: MnistParams = MnistParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    datasets: Annotated[dict[str, DatasetSpec], Field(min_length=1)]
    variants: Annotated[dict[str, VariantSpec], Field(min_length=1)]
    studies: Studies
    compare: CompareParams = CompareParams()

    @field_validator("variants", "datasets")
    @classmethod
    def _names(cls, entries: dict) -> dict:
        for name in entries:
            if not re.match(NAME, name):
                raise ValueError(f"name {name!r} must be lower-case letters, digits, '-' or '_'")
        return entries

    @model_validator(mode="after")
    def _references_exist(self) -> StudyParams:
        def check(kind: str, names: list[str], defined: dict, where: str) -> None:
            for name in names:
                if name not in defined:
                    known = ", ".join(defined)
                    raise ValueError(f"{where}: {kind} {name!r} is not defined; defined: {known}")

        for study_name, study in (("upright", self.studies.upright), ("distorted", self.studies.distorted)):
            check("dataset", study.datasets, self.datasets, f"studies.{study_name}.datasets")
            check("variant", study.variants, self.variants, f"studies.{study_name}.variants")
            for dataset in study.rotation_curve:
                if dataset not in study.datasets:
                    raise ValueError(
                        f"studies.{study_name}.rotation_curve: dataset {dataset!r} is not among the "
                        f"study's datasets ({', '.join(study.datasets)})"
                    )
            if self.compare.baseline not in study.variants:
                raise ValueError(
                    f"compare.baseline {self.compare.baseline!r} is not among studies.{study_name}.variants "
                    f"({', '.join(study.variants)}); every comparison is against it"
                )
            if study.extra_seeds.variants and self.compare.baseline not in study.extra_seeds.variants:
                raise ValueError(
                    f"studies.{study_name}.extra_seeds: compare.baseline {self.compare.baseline!r} must be "
                    "among its variants: comparisons are paired by seed with it"
                )
            for variant in study.variants:
                for dataset in study.datasets:
                    if self.variants[variant].augment and self.datasets[dataset].distortion is None:
                        raise ValueError(
                            f"studies.{study_name}: variant {variant!r} re-draws the distortion "
                            f"(augment: true) but dataset {dataset!r} has none"
                        )
        return self

    def variant(self, name: str) -> VariantSpec:
        if name not in self.variants:
            raise ParamsError(f"variants.{name}: no such variant; defined: {', '.join(self.variants)}")
        return self.variants[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise ParamsError(f"datasets.{name}: no such dataset; defined: {', '.join(self.datasets)}")
        return self.datasets[name]

    def train_for(self, dataset: str) -> TrainParams:
        """The train section with the dataset's own overrides applied."""
        overrides = self.dataset(dataset).train.model_dump(exclude_none=True)
        return self.train.model_copy(update=overrides)


def _known_keys(loc: tuple) -> list[str]:
    """The valid key names beside the last part of `loc`, for 'did you mean' hints."""
    model: type[BaseModel] = StudyParams
    parts = [str(p) for p in loc[:-1]]
    i = 0
    while i < len(parts):
        if model is DatasetSpec and parts[i] == "distortion" and i + 1 < len(parts):
            model, i = DISTORTIONS.get(parts[i + 1], DatasetSpec), i + 2  # skip the union's tag
            continue
        if model is StudyParams and parts[i] in ("variants", "datasets"):
            model, i = (VariantSpec if parts[i] == "variants" else DatasetSpec), i + 2  # skip the name
            continue
        if parts[i] not in model.model_fields:
            return []
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
