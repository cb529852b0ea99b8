"""`stn`: train and test one model, with the original study's flags.

    stn --layer coordconv --function leakyrelu --epochs 50

prints the per-class accuracy table and the average loss / accuracy line, and writes
imgs/stn.png and imgs/cm.png. The full study is the DVC pipeline (`dvc repro`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stn.datasets.mnist import MIRROR_ENV, load_split, prepare_mnist
from stn.entry import run_main
from stn.errors import ParamsError
from stn.analysis.evaluate import confusion, predict, predictions_table, summarize
from stn.analysis.figures import confusion_figure, save_figure, stn_figure
from stn.layout import CHECKPOINT_DIR
from stn.params import TrainParams
from stn.training.loop import Trainer
from stn.variant import VariantSpec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stn", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--layer",
        choices=["conv", "coordconv"],
        default="conv",
        help="conv layers of the STN's localization net (default conv)",
    )
    parser.add_argument(
        "--function",
        choices=["relu", "leakyrelu"],
        default="relu",
        help="activation of the localization net (default relu)",
    )
    parser.add_argument(
        "--negative-slope", type=float, default=0.01, help="Leaky ReLU negative slope (default 0.01)"
    )
    parser.add_argument("--no-stn", action="store_true", help="train the plain CNN control")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("data/mnist"),
        help=f"prepared MNIST; fetched there if missing ({MIRROR_ENV} picks the source)",
    )
    parser.add_argument("--train-count", type=int, default=60000, help="expected training images")
    parser.add_argument("--test-count", type=int, default=10000, help="expected test images")
    parser.add_argument("--out", type=Path, default=Path("imgs"), help="folder for stn.png and cm.png")
    return parser


def _spec_and_params(args: argparse.Namespace) -> tuple[VariantSpec, TrainParams]:
    from pydantic import ValidationError

    try:
        stn_settings = {
            "layer": args.layer,
            "activation": args.function,
            "negative_slope": args.negative_slope,
        }
        spec = VariantSpec(stn=False) if args.no_stn else VariantSpec(stn=True, **stn_settings)
        params = TrainParams(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ParamsError(f"invalid option: {problems}") from None
    if args.seed < 0:
        raise ParamsError(f"--seed must be a non-negative integer, got {args.seed}")
    return spec, params


def per_class_table(metrics: dict) -> str:
    header = "| " + " | ".join(str(c) for c in range(10)) + " |"
    rule = "|" + " :---: |" * 10
    values = "| " + " | ".join(f"{100 * a:.2f}%" for a in metrics["per_class_accuracy"].values()) + " |"
    return "\n".join([header, rule, values])


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)

    def run() -> None:
        spec, params = _spec_and_params(args)
        if not (args.data_dir / "train.npz").is_file() or not (args.data_dir / "test.npz").is_file():
            counts = {"train": args.train_count, "test": args.test_count}
            prepare_mnist(args.data_dir, counts, os.environ.get(MIRROR_ENV) or None)
        images, labels = load_split(args.data_dir, "train")
        name = f"{'cnn' if args.no_stn else 'stn'}-{args.layer}-{args.function}-s{args.seed}"
        # Same checkpoint scheme as the pipeline: rerunning an interrupted command resumes it.
        checkpoint = CHECKPOINT_DIR / f"cli-{name}-e{params.epochs}.pt"
        trainer = Trainer(spec, params, args.seed, images, labels, run_name=name, checkpoint=checkpoint)
        trainer.fit()
        trainer.discard_checkpoint()
        model = trainer.model
        test_images, test_labels = load_split(args.data_dir, "test")
        predictions = predictions_table(predict(model, test_images), test_labels)
        metrics = summarize(predictions)
        print("\nPer-class accuracy:")
        print(per_class_table(metrics))
        print(
            f"\nTest set: Average loss: {metrics['loss']:.4f}, Accuracy: "
            f"{metrics['n_correct']}/{metrics['n']} ({100 * metrics['accuracy']:.2f}%)"
        )
        title = f"{name}: test accuracy {100 * metrics['accuracy']:.2f}%"
        save_figure(stn_figure(model, test_images[:32], title), args.out / "stn.png")
        save_figure(confusion_figure(confusion(predictions), title), args.out / "cm.png")
        print(f"wrote {args.out / 'stn.png'} and {args.out / 'cm.png'}")

    run_main(run)
