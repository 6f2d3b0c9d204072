"""Test-time augmentation levels compared on the very same trained weights.

    python -m bench.tta RUN_DIR [RUN_DIR ...] --levels 2 3 --data-dir DIR --out bench/results/tta_paired.jsonl

Each RUN_DIR is a folder `python -m bench.accuracy --run-dir` kept (its newest checkpoint holds the
final weights). TTA acts only after training, so every level is measured on identical weights and
the comparison is paired: the seed-to-seed spread of training does not enter it. The validation
images are the run's own (rebuilt from its val_size and train_size), so a level can be chosen on
them; test accuracy is printed beside, to report, not to choose. Each view is computed once and
shared by the levels that use it: levels 0-3 together cost level 3's ten forward passes per image.
One JSON line per run and level.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from bench.jsonl import emit
from data.cifar import load_cifar10, split_train_val
from data.loader import eval_batches
from train.evaluate import TTA_LEVELS, forward_passes, loss_and_accuracy, tta_logits
from train.loop import autocast_factory, resolve_precision
from winner.source import load_network, source_from_path

SPLITS = ("val", "test")


class SharedViews(nn.Module):
    """The network, remembering its logits for each view of one batch. The levels share views
    (level 3's ten include level 2's six), so each view is computed once; the same input gives the
    same logits, so every level's numbers are those `train.evaluate.predict` gives."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        for inputs, logits in self.seen:
            if inputs.shape == images.shape and torch.equal(inputs, images):
                return logits
        logits = self.network(images)
        self.seen.append((images, logits))
        return logits


@torch.no_grad()
def logits_by_level(network: nn.Module, images: torch.Tensor, levels: list[int], *, batch_size: int,
                    dtype: torch.dtype, channels_last: bool, autocast) -> dict[int, torch.Tensor]:
    """Float32 logits at each level, every image given the views (tta_confidence 1)."""
    network.eval()
    chunks: dict[int, list[torch.Tensor]] = {level: [] for level in levels}
    with autocast():
        for batch in eval_batches(images, batch_size, dtype, channels_last):
            shared = SharedViews(network)
            for level in levels:
                chunks[level].append(tta_logits(shared, batch, level))
    return {level: torch.cat(parts) for level, parts in chunks.items()}


def compare(run_dir: Path, levels: list[int], data, splits: list[str]) -> list[dict]:
    source = source_from_path(run_dir)
    network, config = load_network(source)
    device = torch.device("cpu")
    precision = resolve_precision(config.precision, device)
    network = network.to(memory_format=torch.channels_last if config.channels_last else torch.contiguous_format)
    _, val_idx = split_train_val(data.train_labels, config.val_size, config.train_size)
    images = {"val": (data.train_images[val_idx], data.train_labels[val_idx]),
              "test": (data.test_images, data.test_labels)}
    rows = {level: {"checkpoint": str(source.checkpoint), "model": config.model, "seed": config.seed,
                    "trained_tta": config.tta, "tta": level, "views": forward_passes(level), "precision": precision}
            for level in levels}
    started = time.perf_counter()
    for split in splits:
        split_images, labels = images[split]
        if not len(labels):  # a run trained on every image has no validation split
            for row in rows.values():
                row[f"{split}_acc"] = None
            continue
        logits = logits_by_level(network, split_images, levels, batch_size=config.eval_batch_size,
                                 dtype=torch.bfloat16 if precision == "bf16" else torch.float32,
                                 channels_last=config.channels_last, autocast=autocast_factory(device, precision))
        for level, row in rows.items():
            row[f"{split}_acc"] = loss_and_accuracy(logits[level], labels)[1]
    seconds = round(time.perf_counter() - started, 2)
    return [{**row, "eval_seconds_all_levels": seconds} for row in rows.values()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    parser.add_argument("--levels", type=int, nargs="+", default=list(TTA_LEVELS), choices=TTA_LEVELS)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                        help="which images to evaluate (validation chooses, test reports)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here as well as to stdout")
    args = parser.parse_args(argv)

    data = load_cifar10(args.data_dir)
    for run_dir in args.run_dirs:
        for row in compare(run_dir, args.levels, data, args.splits):
            emit(row, args.out)


if __name__ == "__main__":
    main()
