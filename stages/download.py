"""Stage download: MNIST -> data/raw/mnist (MNIST_MIRROR selects the source)."""

import os

from stn.atomic import write_json
from stn.datasets.mnist import MIRROR_ENV, prepare_mnist
from stn.entry import run_main
from stn.layout import PROVENANCE, RAW_MNIST
from stn.params.study import load_params


def main() -> None:
    params = load_params()  # the first stage checks the whole file, before anything trains
    counts = {"train": params.mnist.train_count, "test": params.mnist.test_count}
    mirror = os.environ.get(MIRROR_ENV) or None
    print(f"download: MNIST from {mirror or 'the public mirrors'} -> {RAW_MNIST}")
    provenance = prepare_mnist(RAW_MNIST, counts, mirror)
    print(f"download: {provenance['note']}")
    write_json(PROVENANCE, provenance)


if __name__ == "__main__":
    run_main(main)
