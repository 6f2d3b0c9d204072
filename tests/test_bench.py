"""The benchmark commands run end to end and print what their docs promise (numbers not judged here)."""

from __future__ import annotations

import json

import pytest

from bench import throughput


def test_throughput_prints_the_matmul_peak_then_one_line_per_network(capsys):
    throughput.main(["--models", "fast", "--batch-size", "8", "--steps", "1", "--rounds", "1", "--peak",
                     "--device", "cpu"])
    peak, fast = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert peak["gflops_per_second"] > 0 and peak["size"] == 2048
    assert fast["model"] == "fast" and fast["speedup"] > 0
    # The printed fields are rounded, so their product matches the achieved rate only closely.
    achieved = fast["images_per_second"] * fast["gflops_per_image"]
    assert fast["achieved_gflops_per_second"] == pytest.approx(achieved, rel=5e-3)
