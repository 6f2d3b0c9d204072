"""Training FLOPs of a recipe, counted on the CPU without training anything.

    python -m bench.flops --model fast --epochs 10 7.5 [--set KEY=VALUE ...] [--out bench/results/flops.jsonl]

Counted, not estimated: torch.utils.flop_counter.FlopCounterMode records the forward and the
backward pass of one training step (matrix products and convolutions, a multiply-add counted as
2 FLOPs, as the public records count) for each kind of step the run takes (full or low
resolution; whitening bias trained or frozen), on meta tensors, so only shapes are worked out and
nothing is computed. That times the number of such steps is the run's training work, plus, with
`bn_calibration_images`, the forward passes that re-estimate BatchNorm's statistics after the last
step (counted per image like an evaluation pass). Not included: the optimiser's own arithmetic
(Muon's Newton-Schulz iterations), elementwise work (BatchNorm, activations, the loss: torch counts
none of it), the whitening initialisation, and evaluation (`eval_gflops_max` gives the test-set
TTA pass separately, as if every image took every view).

Runs train on all 50,000 images (val_size=0) unless `--set` says otherwise, as bench.gpu does.
Two ratios: `ratio_to_354_tflop` against the 354 TFLOP quoted for `fast`'s earlier recipe to 94%
(10 epochs at batch 2,000: 500,000 images at 0.708 GFLOP, the per-image count with the whitening
bias trained); `ratio_to_today_counted` against that same recipe counted here, step kind by step
kind (the bias trains for 3 of the 10 epochs, and a frozen bias spares one input gradient). The
field keeps its name from when that recipe was the registry's, so older result lines still read.
"""

from __future__ import annotations

import argparse
import functools
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench.jsonl import emit
from model.registry import build_model
from train.calibrate import calibrated_images
from train.config import TrainConfig

REFERENCE_FLOPS = 354e12  # fast, 10 epochs, batch 2000 on 50,000 images: 250 steps x 2000 x 0.708 GFLOP
# fast's earlier recipe to 94% (the reference the 0.75x target is set against), pinned in every
# key that sets the work, so the reference stays put when the registry's recipe changes.
REFERENCE_RECIPE = {"model": "fast", "epochs": 10, "batch_size": 2000, "val_size": 0, "train_size": None,
         "whiten_bias_epochs": 3.0, "low_res_epochs": 0, "tta": 2}
TRAIN_IMAGES = 50_000
TEST_IMAGES = 10_000
TTA_VIEWS = {0: 1, 1: 2, 2: 6}  # forward passes per test image at each TTA level
COUNTED = ("forward + backward FLOPs counted by torch.utils.flop_counter.FlopCounterMode on one training "
           "step of each kind x steps (matmul and convolution; multiply-add = 2), plus the forward passes "
           "of any BatchNorm calibration; excludes optimiser arithmetic, elementwise ops, whitening init "
           "and evaluation")


def step_kinds(config: TrainConfig, train_images: int) -> tuple[Counter, int, int]:
    """How many steps of each kind (image side, whitening bias trained) the run takes; steps per epoch, batch."""
    batch = min(config.batch_size, train_images)
    steps_per_epoch = train_images // batch
    total_steps = max(1, round(config.epochs * steps_per_epoch))  # as train() rounds it
    whiten_steps = round(config.whiten_bias_epochs * steps_per_epoch)
    kinds: Counter = Counter()
    for step in range(total_steps):
        low_res = step // steps_per_epoch < config.low_res_epochs and config.low_res_size < 32
        kinds[(config.low_res_size if low_res else 32, step < whiten_steps)] += 1
    return kinds, steps_per_epoch, batch


def step_flops(config: TrainConfig, batch: int, side: int, whiten_trained: bool) -> int:
    """Forward + backward FLOPs of one training step, counted on meta tensors."""
    with torch.device("meta"):
        model = build_model(config.model, config.max_params, **config.network_options())
        images = torch.empty(batch, 3, side, side)
        labels = torch.zeros(batch, dtype=torch.long)
    for p in model.parameter_roles().get("whiten", []):
        p.requires_grad_(whiten_trained)
    model.train()
    with FlopCounterMode(display=False) as counter:
        loss = F.cross_entropy(model(images), labels, label_smoothing=config.label_smoothing)
        loss.backward()
    return counter.get_total_flops()


def forward_flops_per_image(config: TrainConfig) -> float:
    with torch.device("meta"):
        model = build_model(config.model, config.max_params, **config.network_options())
        images = torch.empty(2, 3, 32, 32)
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() / 2


def training_flops(config: TrainConfig) -> tuple[int, int, int]:
    """FLOPs of the whole run (forward + backward of every step, and the calibration's forward
    passes), its steps and its batch size."""
    train_images = config.train_size or TRAIN_IMAGES - config.val_size
    kinds, _, batch = step_kinds(config, train_images)
    total = sum(count * step_flops(config, batch, side, whiten) for (side, whiten), count in kinds.items())
    if calibrated := calibrated_images(min(config.bn_calibration_images, train_images), batch):
        total += round(forward_flops_per_image(config) * calibrated)  # counted only when the run calibrates
    return total, sum(kinds.values()), batch


@functools.cache
def reference_flops() -> int:
    """The reference recipe counted here, once per process (every record is compared with it)."""
    return training_flops(TrainConfig.resolve(REFERENCE_RECIPE))[0]


def count_training_flops(config: TrainConfig) -> dict[str, Any]:
    """The run's training FLOPs as one JSON-ready record."""
    total, steps, batch = training_flops(config)
    reference = reference_flops()
    images = steps * batch
    return {
        "model": config.model, "epochs": config.epochs, "batch_size": batch,
        "train_images": config.train_size or TRAIN_IMAGES - config.val_size, "steps": steps,
        "images_processed": images,
        "train_flops": total, "train_tflops": round(total / 1e12, 2),
        "gflops_per_image": round(total / images / 1e9, 4),
        "ratio_to_354_tflop": round(total / REFERENCE_FLOPS, 4),
        "ratio_to_today_counted": round(total / reference, 4), "today_counted_tflops": round(reference / 1e12, 2),
        "eval_gflops_max": round(forward_flops_per_image(config) * TEST_IMAGES * TTA_VIEWS[config.tta] / 1e9, 1),
        "counted": COUNTED, "torch": torch.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fast")
    parser.add_argument("--epochs", type=float, nargs="+", default=None, help="default: the recipe's")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines here as well")
    args = parser.parse_args(argv)

    from train.overrides import parse_overrides

    overrides = parse_overrides(args.overrides)
    base = {"model": args.model, "val_size": 0, **overrides}
    for epochs in args.epochs or [None]:
        config = TrainConfig.resolve(base if epochs is None else {**base, "epochs": epochs})
        emit({**count_training_flops(config), "overrides": overrides}, args.out)


if __name__ == "__main__":
    main()
