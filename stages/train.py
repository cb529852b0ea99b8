"""Stage train@VARIANT-SEED: train one variant with one seed, resumable per epoch."""

import sys

from stn.data import load_split
from stn.entry import run_main
from stn.layout import DATA_DIR, RunPaths
from stn.model import save_model
from stn.params import load_params
from stn.train import Trainer, save_history


def main() -> None:
    variant, seed = sys.argv[1], int(sys.argv[2])
    params = load_params()
    spec = params.variant(variant)
    paths = RunPaths(variant, seed)
    images, labels = load_split(DATA_DIR, "train")
    trainer = Trainer(
        spec, params.train, seed, images, labels, run_name=paths.name, checkpoint=paths.checkpoint
    )
    history = trainer.fit()
    save_model(trainer.model, paths.model)
    save_history(history, paths.history)
    trainer.discard_checkpoint()


if __name__ == "__main__":
    run_main(main)
