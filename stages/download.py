"""Stage download: MNIST -> data/mnist/{train,test}.npz (MNIST_MIRROR selects the source)."""

import os

from stn.atomic import write_json
from stn.data import MIRROR_ENV, prepare_mnist
from stn.entry import run_main
from stn.layout import DATA_DIR, PROVENANCE
from stn.params import load_params


def main() -> None:
    params = load_params()
    counts = {"train": params.data.train_count, "test": params.data.test_count}
    mirror = os.environ.get(MIRROR_ENV) or None
    print(f"download: MNIST from {mirror or 'the public mirrors'} -> {DATA_DIR}")
    provenance = prepare_mnist(DATA_DIR, counts, mirror)
    write_json(PROVENANCE, provenance)


if __name__ == "__main__":
    run_main(main)
