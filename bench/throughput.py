"""Training-step throughput of each network: our settings against plain fp32 eager PyTorch.

    python -m bench.throughput [--models fast resnet9] [--batch-size 500] [--steps 4] [--peak [--peak-size 2048]]

Both variants run in one process, alternating rounds (A B A B ...) so drift in
the machine's speed hits both alike. "ours" is the training step exactly as
`train()` runs it (bf16 autocast where supported, channels_last, on-device
augmentation, the model's optimiser); "baseline" is the same step in fp32 with
contiguous tensors. FLOPs are counted once with torch's FlopCounterMode
(forward + backward per image), so networks of different size compare on
achieved GFLOP/s. `--peak` first prints the best rate of a large matrix product
in the training precision: about the most a training step could reach on the device.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from data.loader import AugmentSpec, DeviceLoader
from model.registry import build_model
from train.config import TrainConfig
from train.loop import autocast_factory, resolve_device, resolve_precision, training_step
from train.optim import build_optimizers, build_schedulers


def training_gflops_per_image(name: str, batch: int = 4) -> float:
    """Forward + backward FLOPs of one image, counted by torch (multiply-add = 2 FLOPs)."""
    model = build_model(name)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / batch / 1e9


PEAK_MATMUL_SIZE = 2048


def matmul_gflops_per_second(device: torch.device, dtype: torch.dtype, size: int = PEAK_MATMUL_SIZE,
                             repeats: int = 10, rounds: int = 5) -> float:
    """Best rate of a square matrix product over a few rounds: the device's best case for conv-heavy work."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(rounds):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9)
    return best


class Variant:
    """A network with its optimiser and data pipeline, set up to time training steps."""

    def __init__(self, config: TrainConfig, device: torch.device, images: torch.Tensor, labels: torch.Tensor):
        self.config = config
        self.precision = resolve_precision(config.precision, device)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        torch.manual_seed(config.seed)
        self.model = build_model(config.model, **config.network_options()).to(device=device,
                                                                                memory_format=memory_format)
        self.loader = DeviceLoader(images, labels, config.batch_size, AugmentSpec.from_settings(config), config.seed,
                                   device, dtype=dtype, channels_last=config.channels_last)
        self.optimizers = build_optimizers(self.model, config)
        self.schedulers = build_schedulers(self.optimizers, config, total_steps=10_000, whiten_steps=0)
        self.autocast = autocast_factory(device, self.precision)
        self.device = device

    def images_per_second(self, steps: int) -> float:
        batches = self.loader.epoch(0)
        started = time.perf_counter()
        for _ in range(steps):
            images, labels = next(batches)
            training_step(self.model, images, labels, self.optimizers, self.schedulers, self.config, self.autocast)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return steps * self.config.batch_size / (time.perf_counter() - started)


def measure(name: str, batch_size: int, steps: int, rounds: int, device: torch.device) -> dict:
    ours = TrainConfig.resolve({"model": name, "batch_size": batch_size})
    baseline = ours.changed(precision="fp32", channels_last=False)
    generator = torch.Generator().manual_seed(0)
    warmup_steps = 2  # kernel selection, allocator
    count = batch_size * max(steps, warmup_steps)  # one epoch holds every round's batches
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    variants = {"ours": Variant(ours, device, images, labels), "baseline": Variant(baseline, device, images, labels)}
    for variant in variants.values():
        variant.images_per_second(warmup_steps)
    speeds: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(rounds):
        for key, variant in variants.items():
            speeds[key].append(variant.images_per_second(steps))
    gflops = training_gflops_per_image(name)
    ours_speed, base_speed = statistics.median(speeds["ours"]), statistics.median(speeds["baseline"])
    return {
        "model": name, "batch_size": batch_size, "device": str(device), "precision": variants["ours"].precision,
        "gflops_per_image": round(gflops, 3),
        "images_per_second": round(ours_speed, 1), "baseline_images_per_second": round(base_speed, 1),
        "speedup": round(ours_speed / base_speed, 2),
        "achieved_gflops_per_second": round(ours_speed * gflops, 1),
        "baseline_gflops_per_second": round(base_speed * gflops, 1),
        "rounds": {key: [round(v, 1) for v in values] for key, values in speeds.items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["fast", "resnet9"])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--peak", action="store_true", help="first print the device's matrix-product rate")
    parser.add_argument("--peak-size", type=int, default=PEAK_MATMUL_SIZE,
                        help="side of the square matrices --peak multiplies (smaller: quicker, a lower rate)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    if args.peak:
        precision = resolve_precision("auto", device)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        print(json.dumps({"matmul": precision, "size": args.peak_size, "device": str(device),
                          "gflops_per_second": round(matmul_gflops_per_second(device, dtype, args.peak_size), 1),
                          "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for name in args.models:
        print(json.dumps(measure(name, args.batch_size, args.steps, args.rounds, device)), flush=True)


if __name__ == "__main__":
    main()
