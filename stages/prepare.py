"""Stage prepare@NAME: data/raw/mnist -> data/NAME (distorted, split, meta.json)."""

import sys

from stn.datasets.normalization import Normalization
from stn.datasets.prepare import prepare_dataset
from stn.entry import run_main
from stn.layout import RAW_MNIST, dataset_dir
from stn.params.run import load_run_params


def main() -> None:
    name = sys.argv[1]
    spec = load_run_params(dataset=name).dataset(name)
    norm = Normalization(**spec.normalization.model_dump()) if spec.normalization else None
    meta = prepare_dataset(
        name, RAW_MNIST, dataset_dir(name), spec.distortion, spec.seed, spec.validation, norm
    )
    print(
        f"prepare@{name}: {meta['counts']} images of {meta['image_size']}, "
        f"mean {meta['normalization']['mean']:.4f} std {meta['normalization']['std']:.4f}, "
        f"sha256 {meta['content_sha256'][:12]}; source: {meta['source_note']}"
    )


if __name__ == "__main__":
    run_main(main)
