"""Stage samples@NAME: a grid of the dataset's first test images (plots/datasets/NAME.png)."""

import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from stn.datasets.store import load_arrays
from stn.entry import run_main
from stn.layout import dataset_dir

COUNT = 32


def main() -> None:
    name = sys.argv[1]
    images, _ = load_arrays(dataset_dir(name), "test")
    out = Path("plots/datasets") / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.as_tensor(images[:COUNT]).unsqueeze(1).float() / 255
    save_image(batch, out, nrow=16, padding=2, pad_value=0.5)
    print(f"samples@{name}: {out}")


if __name__ == "__main__":
    run_main(main)
