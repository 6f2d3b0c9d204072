"""report.html in headless Chromium: every figure decodes, and a full-page screenshot is not blank.

Needs Debian's `chromium` (apt-get install -y chromium); skipped only where it is absent.
Set REPORT_SCREENSHOT_OUT=path.png to keep the screenshot.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from report.build import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
WIDTH = 1400
# Run in the page after load: what each <img> decoded to, and how tall the page is.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images].map(img => ({alt: img.alt, complete: img.complete,
                                                    width: img.naturalWidth, height: img.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({images, height: document.documentElement.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def chromium(*args: str, height: int) -> str:
    with tempfile.TemporaryDirectory() as profile:  # a fresh profile: nothing cached, nothing shared
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
                               *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # IHDR
    return width, height


@pytest.fixture(scope="module")
def rendered(trained_report_runs, tmp_path_factory):
    from conftest import MemorySource, report_records

    out = tmp_path_factory.mktemp("browser") / "report"
    report = build_report(MemorySource(*report_records(trained_report_runs)), "swp1", out)
    probe_page = out.parent / "probe.html"
    probe_page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--virtual-time-budget=10000", "--dump-dom", probe_page.as_uri(), height=900)
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe script did not run"
    return report, out, json.loads(html.unescape(found.group(1)))


def test_every_figure_loads_in_the_browser_at_its_real_size(rendered):
    report, out, probe = rendered
    images = probe["images"]
    assert [i["alt"] for i in images] == [f.title for f in report.figures]
    for image, entry in zip(images, report.figures):
        assert image["complete"] and image["width"] > 0, f"{entry.key} did not load"
        assert (image["width"], image["height"]) == png_size(out / entry.path), entry.key


def test_screenshot_of_the_whole_report_is_not_blank(rendered, tmp_path):
    _, out, probe = rendered
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", (out / "report.html").as_uri(), height=probe["height"])
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.shape == (probe["height"], WIDTH, 3)
    # Blank would be one flat colour; check every horizontal band, so no figure rendered as empty space.
    bands = np.array_split(pixels, 6, axis=0)
    for index, band in enumerate(bands):
        colours = len(np.unique(band.reshape(-1, 3), axis=0))
        assert band.std() > 10 and colours > 50, f"band {index} of the screenshot looks blank"
    if target := os.environ.get("REPORT_SCREENSHOT_OUT"):
        shutil.copyfile(shot, target)
