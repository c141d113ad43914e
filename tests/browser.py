"""Render a local HTML file in headless Chromium and report what a reader would see.

The browser is Debian's `chromium` (installed by `make browser`, a prerequisite of `make test`),
driven through Playwright's Python package with `executable_path`; Playwright's own browser
download (`playwright install`) is never used. The page is opened from a file:// URL in a fresh
profile, and every request that is not file:, data:, blob: or about: is recorded and aborted, so
nothing leaves the machine.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")

# Runs after the load event: lazy images are made eager and every image is awaited (load or
# error, 10 s at most), then the facts are read off the DOM.
_FACTS_JS = """
async () => {
  const imgs = Array.from(document.images);
  for (const img of imgs) if (img.loading === "lazy") img.loading = "eager";
  const settled = (img) => img.complete ? Promise.resolve() : new Promise((done) => {
    img.addEventListener("load", done, {once: true});
    img.addEventListener("error", done, {once: true});
  });
  await Promise.race([
    Promise.all(imgs.map(settled)),
    new Promise((done) => setTimeout(done, 10000)),
  ]);
  return {
    title: document.title,
    section_ids: Array.from(document.querySelectorAll("section[id]"), (s) => s.id),
    images: imgs.map((img) => ({
      alt: img.getAttribute("alt") || "",
      loaded: img.complete && img.naturalWidth > 0,
      width: img.naturalWidth,
      height: img.naturalHeight,
      inline: (img.getAttribute("src") || "").startsWith("data:"),
    })),
  };
}
"""


@dataclass
class PageFacts:
    """What the rendered page holds. Image width and height are the decoded (natural) size."""

    title: str
    section_ids: list[str]
    images: list[dict]  # per <img>: alt, loaded, width, height, inline
    console_errors: list[str]
    external_requests: list[str]  # requests that are not file:/data: (aborted; should be none)


def chromium_path() -> str | None:
    """The Chromium executable, or None when it is not installed."""
    return CHROMIUM if os.access(CHROMIUM, os.X_OK) else (shutil.which("chromium") or None)


def inspect_page(
    html: Path, screenshot: Path | None = None, width: int = 1280, timeout_s: float = 60
) -> PageFacts:
    """Open `html` in headless Chromium, wait for it to load, and return its facts.

    With `screenshot`, a full-page PNG is written there. Raises RuntimeError when Chromium is
    not installed.
    """
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise RuntimeError(f"Chromium is not installed ({CHROMIUM}); run `make browser` as root")
    url = Path(html).resolve().as_uri()
    timeout_ms = timeout_s * 1000
    console_errors: list[str] = []
    external: list[str] = []

    def on_request(request) -> None:
        if not request.url.startswith(LOCAL_SCHEMES):
            external.append(request.url)

    def on_route(route) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort()

    with tempfile.TemporaryDirectory(prefix="sao-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=exe,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": 800},
            offline=True,
            timeout=timeout_ms,
        )
        try:
            context.set_default_timeout(timeout_ms)
            context.route("**/*", on_route)
            page = context.pages[0] if context.pages else context.new_page()
            page.on("request", on_request)
            page.on(
                "console",
                lambda msg: console_errors.append(msg.text) if msg.type == "error" else None,
            )
            page.on("pageerror", lambda exc: console_errors.append(f"uncaught: {exc}"))
            page.goto(url, wait_until="load")
            facts = page.evaluate(_FACTS_JS)
            if screenshot is not None:
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()
    return PageFacts(
        title=facts["title"],
        section_ids=facts["section_ids"],
        images=facts["images"],
        console_errors=console_errors,
        external_requests=external,
    )


def require_chromium() -> None:
    """Skip the calling test without Chromium, except under CI, where that is a failure."""
    import pytest

    if chromium_path() is None:
        reason = "Chromium is not installed (/usr/bin/chromium): `make browser` installs it as root"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
