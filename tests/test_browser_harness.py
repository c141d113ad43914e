"""The headless-Chromium harness (tests/browser.py) tells a loaded image from a broken one.

Skips only where Chromium is not installed (a developer without root); under CI it must run.
The screenshot is kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

from tests.browser import inspect_page, require_chromium

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_bytes(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour RGB PNG, written with the standard library alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * width  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        PNG_MAGIC
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>harness check</title></head>
<body>
<section id="good"><h2>Good</h2><img alt="good" src="{good}"></section>
<section id="broken"><h2>Broken</h2><img alt="broken" src="{broken}"></section>
<div id="not-a-section"><img alt="external" src="http://127.0.0.1:9/external.png"></div>
<script>console.error("harness says boom");</script>
</body></html>
"""


def test_harness_tells_loaded_from_broken_images(tmp_path):
    require_chromium()
    html = tmp_path / "page.html"
    html.write_text(
        PAGE.format(
            good=data_uri(png_bytes(40, 30, (200, 60, 20))),
            broken="data:image/png;base64," + base64.b64encode(b"not a png").decode("ascii"),
        ),
        encoding="utf-8",
    )
    shot = ARTIFACTS / "browser-harness.png"
    shot.unlink(missing_ok=True)

    facts = inspect_page(html, screenshot=shot, width=800)

    assert facts.title == "harness check"
    assert facts.section_ids == ["good", "broken"]
    images = {img["alt"]: img for img in facts.images}
    assert images["good"] == {
        "alt": "good",
        "loaded": True,
        "width": 40,
        "height": 30,
        "inline": True,
    }
    assert images["broken"]["inline"] is True
    assert images["broken"]["loaded"] is False
    assert images["external"]["inline"] is False
    assert images["external"]["loaded"] is False
    assert facts.external_requests == ["http://127.0.0.1:9/external.png"]  # recorded, aborted
    assert "harness says boom" in facts.console_errors
    assert shot.read_bytes().startswith(PNG_MAGIC)
    assert shot.stat().st_size > 1000
