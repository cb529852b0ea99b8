"""All distortions by name; adding one = one module + one line in ``DISTORTIONS``."""

from __future__ import annotations

from typing import Annotated, Union

import numpy as np
from pydantic import Field, TypeAdapter

from stn.datasets.distortions.base import Distortion
from stn.datasets.distortions.elastic import Elastic
from stn.datasets.distortions.proj import Projective
from stn.datasets.distortions.rot import Rotation
from stn.datasets.distortions.rts import RotationTranslationScale

DISTORTIONS: dict[str, type[Distortion]] = {
    "rot": Rotation,
    "rts": RotationTranslationScale,
    "proj": Projective,
    "elastic": Elastic,
}

for _name, _cls in DISTORTIONS.items():  # a registry key must be its class's discriminator value
    assert _cls.model_fields["kind"].default == _name, (_name, _cls)

# Parsed by the "kind" field: {"kind": "rts", "canvas": 42} -> RotationTranslationScale(canvas=42).
DistortionSpec = Annotated[Union[tuple(DISTORTIONS.values())], Field(discriminator="kind")]  # noqa: UP007

_ADAPTER: TypeAdapter[Distortion] = TypeAdapter(DistortionSpec)


def parse_distortion(data: object) -> Distortion:
    """Validate a mapping (e.g. from params.yaml) into the distortion class its ``kind`` names."""
    return _ADAPTER.validate_python(data)


def distort(images: np.ndarray, spec: Distortion, rng: np.random.Generator) -> np.ndarray:
    """Apply ``spec`` to ``images`` with ``rng`` (a convenience for ``spec.apply``)."""
    return spec.apply(images, rng)
