"""Time to 94% and 95% CIFAR-10 test accuracy on a GPU (one command).

    python -m bench.gpu --data-dir /tmp/cifar [--seeds 3] [--targets 94 95]

For each target it trains the registered recipe aimed at it (94: `fast`,
95: `fast-wide`) on all 50,000 training images (val_size=0: this is a final
training, not a sweep), after one untimed warm-up run of the same recipe
(another seed) that pays for torch.compile and kernel autotuning. Training
time excludes evaluation, as the public records count it. A target counts as
reached when the mean test accuracy with test-time augmentation over the seeds
is at or above it; the time reported is the mean training time of those runs.
One JSON line per run, then one per target, each with the `--set` overrides.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from data.cifar import load_cifar10
from train import TrainConfig, train

RECIPES = {94.0: {"model": "fast"}, 95.0: {"model": "fast-wide"}}


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=positive_int, default=3, metavar="N")
    parser.add_argument("--targets", type=float, nargs="+", default=sorted(RECIPES), choices=sorted(RECIPES))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the recipes (e.g. train_size=2000 for a quick check)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; pass --device cpu for a functional check")

    from train.overrides import parse_overrides

    overrides = parse_overrides(args.overrides)
    data = load_cifar10(args.data_dir)
    for target in args.targets:
        values = {**RECIPES[target], "val_size": 0, "compile": not args.no_compile, **overrides}
        config = TrainConfig.resolve(values)
        # The warm-up is the whole recipe: the whitening bias freezes part-way, and the
        # graph compiled after that must be in the cache before the timed runs too.
        train(config.changed(seed=10_000), data=data, device=args.device)
        runs = []
        for seed in range(args.seeds):
            result = train(config.changed(seed=seed), data=data, device=args.device)
            runs.append(result)
            print(json.dumps({"target": target, "model": config.model, "overrides": overrides, "seed": seed,
                              "epochs": config.epochs,
                              "train_seconds": round(result.train_seconds, 3), "test_acc": result.test_acc,
                              "test_acc_tta": result.test_acc_tta, "device": result.device,
                              "torch": torch.__version__}), flush=True)
        mean_acc = statistics.mean(r.test_acc_tta for r in runs)
        mean_time = statistics.mean(r.train_seconds for r in runs)
        print(json.dumps({"target": target, "model": config.model, "overrides": overrides,
                          "params": runs[0].params, "seeds": args.seeds,
                          "mean_test_acc_tta": round(mean_acc, 4), "mean_train_seconds": round(mean_time, 3),
                          "reached": mean_acc * 100 >= target,
                          "time_to_target_seconds": round(mean_time, 3) if mean_acc * 100 >= target else None,
                          "device": runs[0].device}), flush=True)


if __name__ == "__main__":
    main()
