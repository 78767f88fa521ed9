"""A real headless Chromium for portal tests (Playwright driving Debian's `chromium`), the axe-core
accessibility check, and where screenshots go.

`make setup` installs chromium with apt-get when it is missing and apt-get is usable, and axe-core
from npm into .tunewise/npm; where either is missing the browser tests skip and say why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("TUNEWISE_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run"]
AXE_JS = Path(os.environ.get("TUNEWISE_AXE_JS", ROOT / ".tunewise" / "npm" / "node_modules" / "axe-core" /
                             "axe.min.js"))
SCREENSHOTS = Path(os.environ.get("TUNEWISE_SCREENSHOTS", ROOT / "out" / "screenshots"))  # kept out by .gitignore
PHONE = {"width": 390, "height": 844}


def _why_no_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install -y chromium` (make setup does it where apt-get works)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; skips with the reason when none can start here."""
    reason = _why_no_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """Save the page as `<SCREENSHOTS>/<name>.png` (the run's record of every main page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def axe_violations(page, impacts: tuple[str, ...] = ("critical", "serious")) -> list[str]:
    """axe-core's violations of `impacts` on the page, one line each (rule, impact, first elements)."""
    if not AXE_JS.exists():
        pytest.skip(f"axe-core is not installed at {AXE_JS}: `make setup` installs it with npm")
    page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at " + ", ".join(str(n['target']) for n in v['nodes'][:3])
            for v in result["violations"] if v.get("impact") in impacts]


def fits_the_width(page) -> bool:
    """No horizontal scrolling of the whole page (wide tables scroll inside their own box)."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
