"""Train a named config on real CIFAR-10 and append one JSON line per run.

    python -m bench.accuracy --model fast --seeds 0 1 --set val_size=0 --out bench/results/fast.jsonl

Each line: model, params, epochs, val/test accuracy, train and wall seconds,
images/s, device, torch version, and the full config. With --run-dir, each seed's
checkpoints (the last one holds the final weights) and test predictions are kept in
DIR/seed-N, so settings that act only after training (test-time augmentation, say) can
later be compared on the very same weights (`python -m bench.tta`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from bench.jsonl import emit
from data.cifar import Cifar10, load_cifar10
from train import EpochEnd, TrainConfig, TrainHooks, train
from train.overrides import parse_overrides


class PrintEpochs(TrainHooks):
    def on_epoch(self, event: EpochEnd) -> None:
        print(f"  epoch {event.metrics.epoch}/{event.epochs} {event.metrics.model_dump_json()}", file=sys.stderr,
              flush=True)


def run_once(values: dict, data: Cifar10, run_dir: Path | None = None) -> dict:
    config = TrainConfig.resolve(values)
    started = time.perf_counter()
    result = train(config, PrintEpochs(), data=data, run_dir=run_dir)
    final = result.final
    return {
        "model": result.model, "params": result.params, "epochs": config.epochs, "seed": config.seed,
        "val_acc": final.val_acc if final else None, "test_acc": result.test_acc,
        "test_acc_tta": result.test_acc_tta, "train_seconds": round(result.train_seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "images_per_second": round(sum(h.images_per_second for h in result.history) / len(result.history), 1),
        "device": result.device, "precision": result.precision, "torch": torch.__version__,
        "config": result.config, "checkpoint": result.checkpoint, "resumed_from": result.resumed_from,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here as well as to stdout")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep each seed's checkpoints and predictions in RUN_DIR/seed-N")
    args = parser.parse_args(argv)

    values = {"model": args.model, **parse_overrides(args.overrides)}
    data = load_cifar10(args.data_dir)
    for seed in args.seeds:
        run_dir = args.run_dir / f"seed-{seed}" if args.run_dir else None
        emit(run_once({**values, "seed": seed}, data, run_dir), args.out)


if __name__ == "__main__":
    main()
