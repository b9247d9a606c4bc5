"""The screenshot script runs and writes one SVG (and PNG, with rsvg-convert) per screen."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers.chromium import chromium_path
from tests.screenshots import SCREENS, main


def test_screenshots_script(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    for name in SCREENS:
        svg = tmp_path / f"{name}.svg"
        assert svg.exists() and "<svg" in svg.read_text()[:500]
        if shutil.which("rsvg-convert"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000
    if chromium_path():  # mqttchat serve in a headless browser
        assert (tmp_path / "browser.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
