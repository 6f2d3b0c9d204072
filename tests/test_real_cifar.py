"""`fast` learns on real CIFAR-10 images (skipped where the dataset is absent).

A file of its own: it is the suite's costliest test, and `--dist loadfile` can then run it beside
the rest of test_train.py instead of after it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from data.cifar import load_cifar10
from train import TrainConfig, train


def test_one_epoch_on_real_cifar_subset(real_data_dir: Path):
    config = TrainConfig.resolve({"model": "fast", "epochs": 1, "train_size": 2000, "val_size": 500,
                                  "batch_size": 250, "tta": 0})
    data = load_cifar10(real_data_dir, download=False)
    # The first 1,000 test images: the whole test set would cost a CPU more than the training does.
    data = dataclasses.replace(data, test_images=data.test_images[:1000], test_labels=data.test_labels[:1000])
    result = train(config, data=data)
    assert result.history[0].val_acc > 0.3  # chance is 0.1
    assert result.test_acc > 0.3
