"""The whole of params.yaml: the run sections of `stn.params.run` plus studies and comparisons.

Report stages and the command line read this; training and evaluation stages do not (see
`stn.params.run`), so a change here reruns only the reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, field_validator, model_validator

from stn.datasets.distortions.registry import DistortionSpec
from stn.params.run import (
    EXTRA,
    RECIPE_SEP,
    DatasetSpec,
    EvaluateParams,
    MnistParams,
    NormalizationParams,
    RunParams,
    Seeds,
    Strict,
    TrainParams,
    unique_seeds,
    validate,
)
from stn.params.source import read_params_file
from stn.run_paths import RunPaths, StagePaths
from stn.variant import VariantSpec

__all__ = [
    "CompareParams",
    "DatasetSpec",
    "DistortionSpec",
    "EvaluateParams",
    "MnistParams",
    "NormalizationParams",
    "RecipeSearchSpec",
    "RecipeStudySpec",
    "StudyParams",
    "StudySpec",
    "TrainParams",
    "VariantSpec",
    "load_params",
    "parse_params",
]


class ExtraSeeds(Strict):
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

    def check_fits(self, variants: list[str], seeds: list[int]) -> None:
        """Raises ValueError unless every variant is among the study's and no seed is already one."""
        for variant in self.variants:
            if variant not in variants:
                raise ValueError(f"extra_seeds: variant {variant!r} is not among the study's variants")
        if overlap := sorted(set(self.seeds) & set(seeds)):
            raise ValueError(f"extra_seeds: seeds {overlap} are already the study's seeds")


class StudySpec(Strict):
    """Which variants run on which datasets, with which seeds: one run per combination."""

    datasets: Annotated[list[str], Field(min_length=1)]
    variants: Annotated[list[str], Field(min_length=1)]
    seeds: Annotated[list[StrictInt], Field(min_length=1), AfterValidator(unique_seeds)] = [0, 1, 2]
    rotation_curve: list[str] = Field(
        [], description="datasets of the study whose runs are also tested on upright digits rotated 0..180"
    )
    extra_seeds: ExtraSeeds = ExtraSeeds(variants=[], seeds=[])

    @model_validator(mode="after")
    def _extra_seeds_fit(self) -> StudySpec:
        self.extra_seeds.check_fits(self.variants, self.seeds)
        return self

    def seeds_for(self, variant: str) -> list[int]:
        """The seeds `variant` runs with: the study's, and its extra seeds if it has them."""
        return self.seeds + (self.extra_seeds.seeds if variant in self.extra_seeds.variants else [])

    def runs(self, name: str, dataset: str, variant: str, root: Path = Path(".")) -> list[RunPaths]:
        """The files of every run of (dataset, variant) in this study, called `name`: its seeds
        in the stage group NAME, its extra seeds in the group NAME-extra."""
        return _runs(name, "", self.seeds, self.extra_seeds, dataset, variant, root)


class RecipeSearchSpec(Strict):
    """Training recipes compared on the validation split only: one run per (dataset, variant,
    recipe, seed), trained (stage group search/RECIPE) and never evaluated on the test set."""

    datasets: list[str]
    variants: list[str]
    recipes: list[str] = Field(description="names of params.yaml's recipes section")
    seeds: Annotated[list[StrictInt], Field(min_length=1), AfterValidator(unique_seeds)] = [0]

    @model_validator(mode="after")
    def _all_or_nothing(self) -> RecipeSearchSpec:
        lists = {"datasets": self.datasets, "variants": self.variants, "recipes": self.recipes}
        if any(lists.values()) and not all(lists.values()):
            empty = ", ".join(k for k, v in lists.items() if not v)
            raise ValueError(f"{empty}: empty, so the study runs nothing; give all three lists, or none")
        for key, names in lists.items():
            if len(set(names)) != len(names):
                raise ValueError(f"{key} must be distinct, got {names}")
        return self


def _runs(
    name: str, suffix: str, seeds: list[int], extra: ExtraSeeds, dataset: str, variant: str, root: Path
) -> list[RunPaths]:
    more = extra.seeds if variant in extra.variants else []
    return [StagePaths(name + suffix, dataset, variant, root).run(s) for s in seeds] + [
        StagePaths(name + EXTRA + suffix, dataset, variant, root).run(s) for s in more
    ]


class RecipeStudySpec(RecipeSearchSpec):
    """A study of the paper's protocol: one run per (dataset, variant, recipe, seed), trained and
    evaluated on the test set (stage groups NAME/RECIPE, and NAME-extra/RECIPE for extra seeds);
    every comparison is paired by seed with `baseline`."""

    seeds: Annotated[list[StrictInt], Field(min_length=1), AfterValidator(unique_seeds)] = [0, 1, 2]
    extra_seeds: ExtraSeeds = ExtraSeeds(variants=[], seeds=[])
    baseline: str | None = Field(None, description="the variant every other one is compared with")

    @model_validator(mode="after")
    def _extra_seeds_and_baseline_fit(self) -> RecipeStudySpec:
        self.extra_seeds.check_fits(self.variants, self.seeds)
        if self.variants and self.baseline not in self.variants:
            raise ValueError(f"baseline: {self.baseline!r} is not among the study's variants {self.variants}")
        if self.extra_seeds.variants and self.baseline not in self.extra_seeds.variants:
            raise ValueError(
                f"extra_seeds: the baseline {self.baseline!r} must be among its variants (pairing)"
            )
        return self

    def runs(
        self, name: str, dataset: str, variant: str, recipe: str, root: Path = Path(".")
    ) -> list[RunPaths]:
        """The files of every run of (dataset, variant) with `recipe` in this study, called
        `name`: its seeds in the stage group NAME/RECIPE, extra seeds in NAME-extra/RECIPE."""
        return _runs(name, RECIPE_SEP + recipe, self.seeds, self.extra_seeds, dataset, variant, root)


class Studies(Strict):
    upright: StudySpec
    distorted: StudySpec
    search: RecipeSearchSpec
    table1: RecipeStudySpec
    budget: RecipeStudySpec

    @field_validator("upright")
    @classmethod
    def _one_upright_dataset(cls, study: StudySpec) -> StudySpec:
        if len(study.datasets) != 1:
            raise ValueError(f"the upright study runs on exactly one dataset, got {study.datasets}")
        return study

    @field_validator("upright", "budget")
    @classmethod
    def _no_extra_seeds(cls, study: StudySpec | RecipeStudySpec) -> StudySpec | RecipeStudySpec:
        if study.extra_seeds.variants:  # dvc.yaml has no extra-seed stages for these studies
            raise ValueError(
                "extra_seeds: only the distorted study and Table 1 have them; give every variant the seeds"
            )
        return study

    @field_validator("table1")
    @classmethod
    def _one_table1_recipe(cls, study: RecipeStudySpec) -> RecipeStudySpec:
        if len(study.recipes) > 1:
            raise ValueError(f"recipes: Table 1 uses one recipe for every run, got {study.recipes}")
        return study

    @field_validator("distorted", "table1")
    @classmethod
    def _extra_seeds_stated(cls, study: StudySpec | RecipeStudySpec) -> StudySpec | RecipeStudySpec:
        if "extra_seeds" not in study.model_fields_set:  # dvc.yaml's extra-seed stages read it
            raise ValueError("extra_seeds: required (variants: [], seeds: [] for none)")
        return study


class CompareParams(Strict):
    baseline: str = Field("stn-conv", description="the variant every other one is compared with")


class StudyParams(RunParams):
    """Every section of params.yaml, cross-checked: each name a study uses is defined."""

    datasets: Annotated[dict[str, DatasetSpec], Field(min_length=1)]
    variants: Annotated[dict[str, VariantSpec], Field(min_length=1)]
    studies: Studies
    compare: CompareParams = CompareParams()

    @model_validator(mode="after")
    def _references_exist(self) -> StudyParams:
        def check(kind: str, names: list[str], defined: dict, where: str) -> None:
            for name in names:
                if name not in defined:
                    known = ", ".join(defined)
                    raise ValueError(f"{where}: {kind} {name!r} is not defined; defined: {known}")

        for name in ("search", "table1", "budget"):
            recipe_study = getattr(self.studies, name)
            check("dataset", recipe_study.datasets, self.datasets, f"studies.{name}.datasets")
            check("variant", recipe_study.variants, self.variants, f"studies.{name}.variants")
            check("recipe", recipe_study.recipes, self.recipes, f"studies.{name}.recipes")
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
        self._search_and_table1_fit()
        for study_name in ("upright", "distorted", "search", "table1", "budget"):
            study = getattr(self.studies, study_name)
            for variant in study.variants:
                for dataset in study.datasets:
                    if self.variants[variant].augment and self.datasets[dataset].distortion is None:
                        raise ValueError(
                            f"studies.{study_name}: variant {variant!r} re-draws the distortion "
                            f"(augment: true) but dataset {dataset!r} has none"
                        )
        return self

    def _search_and_table1_fit(self) -> None:
        """The search needs validation splits; Table 1 distorted datasets (its columns); the budget
        curve is Table 1's recipe with other epochs, on some of its datasets and variants."""
        for dataset in self.studies.search.datasets:
            if self.datasets[dataset].validation == 0:
                raise ValueError(
                    f"studies.search.datasets: {dataset!r} has no validation split (datasets.{dataset}"
                    ".validation: 0), and the search judges recipes by validation error only"
                )
        table1, budget = self.studies.table1, self.studies.budget
        for dataset in table1.datasets:
            if self.datasets[dataset].distortion is None:
                raise ValueError(
                    f"studies.table1.datasets: {dataset!r} has no distortion; Table 1's columns are "
                    "the paper's distorted MNIST datasets"
                )
        if not budget.recipes:
            return
        if not table1.recipes:
            raise ValueError("studies.budget: the budget curve extends Table 1, which is empty")
        for key in ("datasets", "variants"):
            if extra := [n for n in getattr(budget, key) if n not in getattr(table1, key)]:
                raise ValueError(f"studies.budget.{key}: {extra} not among studies.table1.{key}")
        anchor = self.train_for(table1.datasets[0], table1.recipes[0])
        epochs = {anchor.epochs: table1.recipes[0]}
        for recipe in budget.recipes:
            train = self.train_for(table1.datasets[0], recipe)
            if train.model_copy(update={"epochs": anchor.epochs}) != anchor:
                raise ValueError(
                    f"studies.budget.recipes: {recipe!r} differs from Table 1's recipe "
                    f"{table1.recipes[0]!r} in more than its epochs"
                )
            if train.epochs in epochs:
                raise ValueError(
                    f"studies.budget.recipes: {recipe!r} trains {train.epochs} epochs, as "
                    f"{epochs[train.epochs]!r} does; each budget needs its own number of epochs"
                )
            epochs[train.epochs] = recipe


def parse_params(raw: object, source: str = "params.yaml") -> StudyParams:
    """Validate a params mapping; the error message lists every bad key by its path."""
    return validate(raw, StudyParams, source)


def load_params(path: Path | str = "params.yaml") -> StudyParams:
    """The whole params file, checked (see `read_params_file` for the YAML rules)."""
    return parse_params(read_params_file(path), str(path))
