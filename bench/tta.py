"""Test-time augmentation levels compared on the very same trained weights.

    python -m bench.tta RUN_DIR [RUN_DIR ...] --levels 2 3 --data-dir DIR --out bench/results/tta_paired.jsonl

Each RUN_DIR is a folder `python -m bench.accuracy --run-dir` kept (its newest checkpoint holds the
final weights). TTA acts only after training, so every level is measured on identical weights and
the comparison is paired: the seed-to-seed spread of training does not enter it. The validation
images are the run's own (rebuilt from its val_size and train_size), so a level can be chosen on
them; test accuracy is printed beside, to report, not to choose. One JSON line per run and level.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path

import torch

from data.cifar import load_cifar10, split_train_val
from train.loop import autocast_factory, resolve_precision
from train.evaluate import SHIFT_WINDOWS, TTA_LEVELS, loss_and_accuracy, predict
from winner.source import load_network, source_from_path


def views(level: int) -> int:
    """Forward passes per image at a TTA level."""
    return 1 if level == 0 else 2 * (1 + len(SHIFT_WINDOWS.get(level, ())))


def compare(run_dir: Path, levels: list[int], data) -> list[dict]:
    source = source_from_path(run_dir)
    network, config = load_network(source)
    device = torch.device("cpu")
    precision = resolve_precision(config.precision, device)
    infer = partial(predict, batch_size=config.eval_batch_size,
                    dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
                    channels_last=config.channels_last, autocast=autocast_factory(device, precision))
    network = network.to(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    _, val_idx = split_train_val(data.train_labels, config.val_size, config.train_size)
    splits = {"val": (data.train_images[val_idx], data.train_labels[val_idx]),
              "test": (data.test_images, data.test_labels)}
    rows = []
    for level in levels:
        row = {"checkpoint": str(source.checkpoint), "model": config.model, "seed": config.seed,
               "trained_tta": config.tta, "tta": level, "views": views(level), "precision": precision}
        started = time.perf_counter()
        for name, (images, labels) in splits.items():
            row[f"{name}_acc"] = (loss_and_accuracy(infer(network, images, tta_level=level), labels)[1]
                                  if len(labels) else None)
        row["eval_seconds"] = round(time.perf_counter() - started, 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--levels", type=int, nargs="+", default=list(TTA_LEVELS), choices=TTA_LEVELS)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here as well as to stdout")
    args = parser.parse_args(argv)

    data = load_cifar10(args.data_dir)
    for run_dir in args.run_dirs:
        for row in compare(run_dir, args.levels, data):
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                with args.out.open("a") as handle:
                    handle.write(line + "\n")


if __name__ == "__main__":
    main()
