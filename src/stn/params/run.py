"""The part of params.yaml that one run's stages read: mnist, train, evaluate, a dataset, a variant.

Training, evaluation and data stages import this module and not `stn.params.study`, so
that editing the study schema (studies, comparisons, reports) reruns none of them.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Literal

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
from stn.params.source import read_params_file
from stn.variant import VariantSpec

NAME = r"^[a-z0-9][a-z0-9_-]*$"


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


# A finite float; YAML's `true` is not 1.0 here.
Number = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


def unique_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    if any(s < 0 for s in seeds):
        raise ValueError(f"seeds must be non-negative, got {seeds}")
    return seeds


Seeds = Annotated[list[StrictInt], AfterValidator(unique_seeds)]
EXTRA = "-extra"  # stage group STUDY-extra: the study's extra seeds (studies.STUDY.extra_seeds)
RECIPE_SEP = "/"  # stage group STUDY/RECIPE: a study's runs with one of its recipes


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MnistParams(Strict):
    train_count: StrictInt = Field(60000, gt=0, description="images expected in the train split")
    test_count: StrictInt = Field(10000, gt=0, description="images expected in the test split")


# Learning rate over training, as a multiple of train.lr (stn.training.optim.lr_factor):
#   constant; cosine: per epoch, half a cosine from 1 towards 0 (the last epoch's factor is still
#   above 0); step: divided by 10 after each third of the epochs (the STN paper's 150k
#   iterations with /10 every 50k, compressed to the budget); onecycle: per step, warm-up then
#   cosine annealing (Smith & Topin 2019; torch's OneCycleLR with cycle_momentum=False).
Schedule = Literal["constant", "cosine", "step", "onecycle"]
Optimizer = Literal["sgd", "adamw"]


class TrainParams(Strict):
    epochs: StrictInt = Field(50, gt=0)
    batch_size: StrictInt = Field(64, gt=0)
    lr: Number = Field(0.01, gt=0)
    momentum: Number = Field(0.0, ge=0, lt=1, description="SGD's momentum (AdamW: must stay 0)")
    schedule: Schedule = Field("constant", description="learning rate over training (see Schedule)")
    # Results depend on the thread count (reduction order), so it is a tracked param.
    threads: StrictInt = Field(1, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = True
    optimizer: Optimizer = Field("sgd", description="sgd, or adamw (Loshchilov & Hutter 2019)")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD with momentum > 0 only)")
    weight_decay: Number = Field(0.0, ge=0, description="L2 (SGD) or decoupled (AdamW) weight decay")

    @model_validator(mode="after")
    def _optimizer_settings_fit(self) -> TrainParams:
        if self.optimizer == "adamw" and self.momentum != 0:
            raise ValueError("momentum: AdamW has no momentum setting (its betas are the defaults); give 0")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov: needs optimizer sgd with momentum > 0")
        return self


class TrainOverrides(Strict):
    """A dataset's own budget, or a recipe: any key given here replaces the train section's."""

    epochs: StrictInt | None = Field(None, gt=0)
    batch_size: StrictInt | None = Field(None, gt=0)
    lr: Number | None = Field(None, gt=0)
    momentum: Number | None = Field(None, ge=0, lt=1)
    schedule: Schedule | None = None
    optimizer: Optimizer | None = None
    nesterov: bool | None = None
    weight_decay: Number | None = Field(None, ge=0)


class NormalizationParams(Strict):
    mean: Number
    std: Number = Field(gt=0)


class DatasetSpec(Strict):
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


class RotationCurveParams(Strict):
    step: StrictInt = Field(15, gt=0, le=180, description="degrees between test rotations, 0..180")


class EvaluateParams(Strict):
    batch_size: StrictInt = Field(1000, gt=0)
    stn_images: StrictInt = Field(32, gt=0, description="test images shown in stn.png")
    rotation_curve: RotationCurveParams = RotationCurveParams()


class RunParams(Strict):
    """The sections a run reads; `datasets` and `variants` may hold only the run's own entries."""

    mnist: MnistParams = MnistParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    datasets: dict[str, DatasetSpec] = {}
    variants: dict[str, VariantSpec] = {}
    recipes: dict[str, TrainOverrides] = Field(
        {}, description="named training recipes a study can run with instead of the datasets' budgets"
    )

    @field_validator("variants", "datasets", "recipes")
    @classmethod
    def _names(cls, entries: dict) -> dict:
        for name in entries:
            if not re.match(NAME, name):
                raise ValueError(f"name {name!r} must be lower-case letters, digits, '-' or '_'")
        return entries

    @model_validator(mode="after")
    def _train_sections_fit(self) -> RunParams:
        # every dataset's budget and every recipe must make a consistent train section
        for dataset in self.datasets:
            self._merged(self.datasets[dataset].train, f"datasets.{dataset}.train", ValueError)
        for recipe, spec in self.recipes.items():
            # A recipe states the whole protocol: its runs then read no key of the train section
            # but the machine's (threads, device, channels_last), as their stages declare.
            if missing := [k for k in TrainOverrides.model_fields if k not in spec.model_fields_set]:
                raise ValueError(
                    f"recipes.{recipe}: a recipe states every training setting; missing: {', '.join(missing)}"
                )
            self._merged(spec, f"recipes.{recipe}", ValueError)
        return self

    def _merged(self, overrides: TrainOverrides, where: str, error: type[Exception]) -> TrainParams:
        try:
            return TrainParams.model_validate(
                {**self.train.model_dump(), **overrides.model_dump(exclude_none=True)}
            )
        except ValidationError as exc:
            message = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
            raise error(f"train with {where}: {message}") from None

    def variant(self, name: str) -> VariantSpec:
        if name not in self.variants:
            raise ParamsError(f"variants.{name}: no such variant; defined: {', '.join(self.variants)}")
        return self.variants[name]

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            raise ParamsError(f"datasets.{name}: no such dataset; defined: {', '.join(self.datasets)}")
        return self.datasets[name]

    def recipe(self, name: str) -> TrainOverrides:
        if name not in self.recipes:
            raise ParamsError(f"recipes.{name}: no such recipe; defined: {', '.join(self.recipes) or 'none'}")
        return self.recipes[name]

    def train_for(self, dataset: str, recipe: str | None = None) -> TrainParams:
        """The train section with the dataset's own overrides applied, or (for a study that names
        recipes) with the recipe's instead: a recipe is one protocol for every dataset.

        Raises ParamsError when the result is inconsistent (e.g. AdamW with momentum).
        """
        if recipe is None:
            return self._merged(self.dataset(dataset).train, f"datasets.{dataset}.train", ParamsError)
        return self._merged(self.recipe(recipe), f"recipes.{recipe}", ParamsError)


def _known_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The valid key names beside the last part of `loc`, for 'did you mean' hints."""
    model: type[BaseModel] = root
    parts = [str(p) for p in loc[:-1]]
    i = 0
    while i < len(parts):
        if model is DatasetSpec and parts[i] == "distortion" and i + 1 < len(parts):
            model, i = DISTORTIONS.get(parts[i + 1], DatasetSpec), i + 2  # skip the union's tag
            continue
        if model is root and parts[i] in ("variants", "datasets"):
            model, i = (VariantSpec if parts[i] == "variants" else DatasetSpec), i + 2  # skip the name
            continue
        if parts[i] not in model.model_fields:
            return []
        annotation = model.model_fields[parts[i]].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model, i = annotation, i + 1
    return list(model.model_fields)


def format_validation_error(exc: ValidationError, source: str, root: type[BaseModel] = RunParams) -> str:
    """Every bad key by its dotted path, with a 'did you mean' for unknown keys."""
    lines = [f"{source}: invalid parameters:"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            choices = _known_keys(loc, root)
            close = difflib.get_close_matches(str(loc[-1]), choices, n=1)
            message = "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
            if choices:
                message += f"; valid keys: {', '.join(choices)}"
        lines.append(f"  {path}: {message}")
    return "\n".join(lines)


def validate(raw: object, model: type[RunParams], source: str) -> RunParams:
    """`raw` validated as `model`; ParamsError listing every bad key otherwise."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source, model)) from None


def _entry(raw: dict, section: str, name: str, source: str) -> dict:
    entries = raw.get(section) or {}
    if not isinstance(entries, dict):
        raise ParamsError(f"{source}: {section}: expected a mapping of names, got {type(entries).__name__}")
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParamsError(
            f"{source}: {section}.{name}: not defined{hint}; defined: {', '.join(entries) or 'none'}"
        )
    return {name: entries[name]}


def load_run_params(
    dataset: str | None = None,
    variant: str | None = None,
    path: Path | str = "params.yaml",
    recipe: str | None = None,
) -> RunParams:
    """The mnist, train and evaluate sections, and the entries of `dataset`, `variant` and `recipe`.

    Only these are read and checked; the whole file is checked by the first stage (download)
    with `stn.params.study`. Raises ParamsError naming every bad key, or a dataset/variant
    that is not defined.
    """
    raw = read_params_file(path)
    picked = {key: raw[key] for key in ("mnist", "train", "evaluate") if key in raw}
    if dataset is not None:
        picked["datasets"] = _entry(raw, "datasets", dataset, str(path))
    if variant is not None:
        picked["variants"] = _entry(raw, "variants", variant, str(path))
    if recipe is not None:
        picked["recipes"] = _entry(raw, "recipes", recipe, str(path))
    return validate(picked, RunParams, str(path))


class _StageSeeds(Strict):
    seeds: Seeds


def split_group(group: str) -> tuple[str, str | None]:
    """A stage group's study and recipe: "table1/paper-sgd" -> ("table1", "paper-sgd"); a study
    without recipes (its runs use the datasets' budgets) has groups STUDY and STUDY-extra."""
    study, _, recipe = group.partition(RECIPE_SEP)
    return study, recipe or None


def load_stage_seeds(group: str, path: Path | str = "params.yaml") -> list[int]:
    """The seeds one train/evaluate stage runs: `studies.STUDY.seeds` for a group STUDY or
    STUDY/RECIPE, or for a group named STUDY-extra, `studies.STUDY.extra_seeds.seeds`.

    Reads only that list (a stage lists it as its param). Raises ParamsError when the study
    or the list is missing or not a list of distinct non-negative integers.
    """
    name = split_group(group)[0]
    study, extra = name.removesuffix(EXTRA), name.endswith(EXTRA)
    keys = ["studies", study, *(["extra_seeds"] if extra else []), "seeds"]
    node: object = read_params_file(path)
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise ParamsError(f"{path}: {'.'.join(keys[: depth + 1])}: not defined")
        node = node[key]
    try:
        return _StageSeeds.model_validate({"seeds": node}).seeds
    except ValidationError as exc:
        message = "; ".join(err["msg"] for err in exc.errors())
        raise ParamsError(f"{path}: {'.'.join(keys)}: {message}") from None
