"""CIFAR-10 loading, validation of bad files, the split, and on-device augmentation."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.main import app
from data.augment import apply_flip, color_jitter, cutout, flip_mask, random_crop
from data.cifar import DataError, load_cifar10, split_train_val
from data.loader import AugmentSpec, DeviceLoader, seeded_generator
from data.normalization import denormalize, normalize
from train.config import TrainConfig


def augment_spec(**changes) -> AugmentSpec:
    """The augmentation of the default configuration (no recipe), with `changes`."""
    return AugmentSpec.from_settings(TrainConfig(), **changes)


def test_loads_tiny_dataset_from_root_or_batches_folder(tiny_data_dir: Path):
    for folder in (tiny_data_dir, tiny_data_dir / "cifar-10-batches-py"):
        data = load_cifar10(folder, download=False)
        assert data.train_images.shape == (200, 3, 32, 32) and data.train_images.dtype == torch.uint8
        assert data.test_images.shape == (40, 3, 32, 32)
        assert data.train_labels.dtype == torch.int64 and set(data.train_labels.tolist()) == set(range(10))
        assert data.classes[0] == "airplane" and len(data.classes) == 10


def test_environment_variable_names_the_data_dir(tiny_data_dir: Path, monkeypatch):
    monkeypatch.setenv("SWEEP_DATA_DIR", str(tiny_data_dir))
    assert load_cifar10(download=False).source == tiny_data_dir / "cifar-10-batches-py"


def _rewrite(path: Path, mutate) -> None:
    with path.open("rb") as handle:
        content = pickle.load(handle, encoding="bytes")
    with path.open("wb") as handle:
        pickle.dump(mutate(content), handle, protocol=2)


BAD_DATA_CASES = {
    "missing file": (lambda f: (f / "data_batch_3").unlink(), "data_batch_3: file is missing"),
    "truncated file": (lambda f: (f / "data_batch_2").write_bytes((f / "data_batch_2").read_bytes()[:500]),
                       "data_batch_2: cannot be read"),
    "corrupt file": (lambda f: (f / "test_batch").write_bytes(b"not a pickle at all"), "test_batch: cannot be read"),
    "wrong shape": (lambda f: _rewrite(f / "data_batch_1", lambda c: {**c, b"data": c[b"data"][:, :1000]}),
                    "data_batch_1: 'data' has shape (40, 1000)"),
    "wrong dtype": (lambda f: _rewrite(f / "data_batch_4", lambda c: {**c, b"data": c[b"data"].astype(np.float32)}),
                    "data_batch_4: 'data' must be a uint8 array"),
    "label out of range": (lambda f: _rewrite(f / "data_batch_5", lambda c: {**c, b"labels": [12] * 40}),
                           "data_batch_5: labels must lie in 0..9"),
    "label count": (lambda f: _rewrite(f / "data_batch_1", lambda c: {**c, b"labels": c[b"labels"][:-1]}),
                    "data_batch_1: 39 labels for 40 images"),
    "image count": (lambda f: _rewrite(f / "test_batch", lambda c: {**c, b"data": c[b"data"][:30],
                                                                      b"labels": c[b"labels"][:30]}),
                    "test_batch: 30 images, expected 40"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA_CASES))
def test_bad_data_is_one_clear_line_and_exit_code_2(case: str, tiny_data_dir: Path):
    damage, expected = BAD_DATA_CASES[case]
    damage(tiny_data_dir / "cifar-10-batches-py")
    with pytest.raises(DataError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_cifar10(tiny_data_dir, download=False)

    result = CliRunner().invoke(app, ["train", "--data-dir", str(tiny_data_dir), "--epochs", "1"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.output


def test_missing_folder_without_download(tmp_path: Path):
    with pytest.raises(DataError, match="no cifar-10-batches-py folder"):
        load_cifar10(tmp_path / "nowhere", download=False)


def test_split_is_deterministic_stratified_and_disjoint(tiny_data_dir: Path):
    labels = load_cifar10(tiny_data_dir, download=False).train_labels
    train_idx, val_idx = split_train_val(labels, val_size=50)
    again_train, again_val = split_train_val(labels, val_size=50)
    assert torch.equal(train_idx, again_train) and torch.equal(val_idx, again_val)
    assert len(val_idx) == 50 and len(train_idx) == 150
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    per_class = torch.bincount(labels[val_idx], minlength=10)
    assert per_class.max() - per_class.min() <= 1

    limited, _ = split_train_val(labels, val_size=50, train_size=30)
    assert len(limited) == 30 and set(limited.tolist()) <= set(train_idx.tolist())
    everything, none = split_train_val(labels, val_size=0)
    assert len(everything) == 200 and len(none) == 0


def test_split_on_real_labels_holds_500_per_class(real_data_dir: Path):
    labels = load_cifar10(real_data_dir, download=False).train_labels
    train_idx, val_idx = split_train_val(labels, val_size=5000)
    assert torch.bincount(labels[val_idx]).tolist() == [500] * 10
    assert len(train_idx) == 45000


def test_translate_is_a_reflect_padded_crop():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    shifted = random_crop(images, pad=2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    for i in range(2):
        windows = [padded[i, :, y:y + 8, x:x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(shifted[i], w) for w in windows)


def test_a_smaller_crop_is_a_window_of_the_padded_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    cropped = random_crop(images, pad=1, generator=torch.Generator().manual_seed(0), size=5)
    assert cropped.shape == (2, 3, 5, 5)
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="reflect")
    for i in range(2):
        windows = [padded[i, :, y:y + 5, x:x + 5] for y in range(6) for x in range(6)]
        assert any(torch.equal(cropped[i], w) for w in windows)


@pytest.mark.parametrize("mode", ["crop", "resize"])
def test_progressive_resizing_trains_small_then_full_size(mode: str, tiny_data_dir: Path):
    data = load_cifar10(tiny_data_dir, download=False)
    spec = augment_spec(translate=0, flip="none", low_res_size=16, low_res_epochs=2, low_res_mode=mode)
    loader = DeviceLoader(data.train_images, data.train_labels, 64, spec, seed=0, device=torch.device("cpu"))
    early, _ = next(loader.epoch(1))
    late, _ = next(loader.epoch(2))
    assert early.shape[-2:] == (16, 16) and late.shape[-2:] == (32, 32)
    if mode == "resize":
        # Halving the side averages each 2x2 block of the whole image.
        order = torch.randperm(len(data.train_images), generator=seeded_generator(torch.device("cpu"), 0, 1))
        expected = torch.nn.functional.avg_pool2d(normalize(data.train_images[order[:64]]), 2)
        assert torch.allclose(early, expected, atol=1e-5)


def test_alternating_flip_mirrors_every_other_epoch():
    base = torch.tensor([True, False, True, False])
    generator = torch.Generator().manual_seed(0)
    even = flip_mask("alternating", 4, epoch=0, base_flips=base, generator=generator, device=torch.device("cpu"))
    odd = flip_mask("alternating", 4, epoch=1, base_flips=base, generator=generator, device=torch.device("cpu"))
    assert torch.equal(even, base) and torch.equal(odd, ~base)
    images = torch.arange(4 * 2 * 2, dtype=torch.float32).view(4, 1, 2, 2)
    flipped = apply_flip(images, even)
    assert torch.equal(flipped[0], images[0].flip(-1)) and torch.equal(flipped[1], images[1])


def test_cutout_zeroes_one_square_per_image():
    images = torch.ones(16, 3, 32, 32)
    out = cutout(images, 8, torch.Generator().manual_seed(1))
    zeroed = (out[:, 0] == 0).sum(dim=(1, 2))
    assert (zeroed > 0).all() and (zeroed <= 64).all()
    assert torch.equal(out[:, 0] == 0, out[:, 2] == 0)


def test_loader_batches_replay_exactly_from_any_step(tiny_data_dir: Path):
    data = load_cifar10(tiny_data_dir, download=False)
    spec = augment_spec(translate=2, flip="alternating", cutout=4, brightness=0.2, contrast=0.2)
    loader = DeviceLoader(data.train_images, data.train_labels, 64, spec, seed=3, device=torch.device("cpu"))
    full = list(loader.epoch(1))
    resumed = list(loader.epoch(1, start_step=1))
    assert len(full) == 3 and len(resumed) == 2
    for (a, la), (b, lb) in zip(full[1:], resumed):
        assert torch.equal(a, b) and torch.equal(la, lb)
    other_epoch = list(loader.epoch(2))
    assert not torch.equal(full[0][0], other_epoch[0][0])


def test_normalize_standardises_real_images(real_data_dir: Path):
    images = load_cifar10(real_data_dir, download=False).train_images[:5000]
    x = normalize(images)
    assert x.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


def test_failed_download_leaves_nothing_behind(tmp_path: Path, monkeypatch):
    import torchvision.datasets

    class Unreachable:
        def __init__(self, *args, **kwargs):
            raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Unreachable)
    target = tmp_path / "fresh"
    with pytest.raises(DataError, match="download failed"):
        load_cifar10(target)
    assert not target.exists()


def test_tiny_fixture_matches_original_pickle_layout(tiny_data_dir: Path):
    with (tiny_data_dir / "cifar-10-batches-py" / "data_batch_1").open("rb") as handle:
        content = pickle.load(handle, encoding="bytes")
    assert set(content) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert content[b"data"].dtype == np.uint8 and content[b"data"].shape == (40, 3072)


def test_data_command_reports_the_dataset(tiny_data_dir: Path):
    result = CliRunner().invoke(app, ["data", "--data-dir", str(tiny_data_dir), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["train_images"] == 200 and facts["test_images"] == 40 and len(facts["classes"]) == 10
    assert facts["source"] == str(tiny_data_dir / "cifar-10-batches-py")


def test_augmentation_defaults_come_from_the_training_configuration_alone():
    # AugmentSpec has no defaults of its own: every field is read from the configuration.
    with pytest.raises(TypeError):
        AugmentSpec()
    recipe = TrainConfig.resolve({"model": "fast"})
    spec = AugmentSpec.from_settings(recipe)
    assert (spec.translate, spec.flip) == (recipe.translate, recipe.flip) == (2, "alternating")
    plain = AugmentSpec.from_settings(TrainConfig())
    assert (plain.translate, plain.flip) == (TrainConfig.model_fields["translate"].default,
                                             TrainConfig.model_fields["flip"].default)


def test_denormalize_undoes_normalize_to_the_pixel():
    pixels = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(denormalize(normalize(pixels)), pixels)


def test_color_jitter_scales_contrast_and_shifts_brightness_per_image():
    images = torch.randn(8, 3, 4, 4)
    generator = torch.Generator().manual_seed(0)
    assert color_jitter(images, 0.0, 0.0, generator) is images  # disabled: untouched, no random draws
    jittered = color_jitter(images, 0.5, 0.3, generator)
    centred, centred_jittered = (x - x.mean(dim=(1, 2, 3), keepdim=True) for x in (images, jittered))
    scale = centred_jittered.flatten(1).norm(dim=1) / centred.flatten(1).norm(dim=1)
    assert ((scale >= 0.7 - 1e-5) & (scale <= 1.3 + 1e-5)).all() and scale.std() > 0
    shift = jittered.mean(dim=(1, 2, 3)) - images.mean(dim=(1, 2, 3))
    assert shift.abs().max() <= 0.5 + 1e-5 and shift.std() > 0
