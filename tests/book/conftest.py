"""Fixtures for the checks of the rendered book (the HTML that `jupyter-book build` writes).

The pages checked are those under ``$RECLIB_BOOK_HTML``; without it, the quick-mode build of
``make book-check`` (``_build/quick/_build/html``), else the full one (``_build/html``).
Run standalone without a build, these tests skip and say why; ``make test`` sets
``RECLIB_BOOK_REQUIRED=1``, and then a missing build is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT / "_build" / "quick" / "_build" / "html", ROOT / "_build" / "html"]


def _required() -> bool:
    return os.environ.get("RECLIB_BOOK_REQUIRED", "0") == "1"


def _missing(reason: str):
    if _required():
        pytest.fail(f"{reason} (RECLIB_BOOK_REQUIRED=1, as in `make test`)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def html_dir() -> Path:
    if os.environ.get("RECLIB_BOOK_HTML"):
        folder = Path(os.environ["RECLIB_BOOK_HTML"])
        if not folder.is_absolute():
            folder = ROOT / folder
        candidates = [folder]
    else:
        candidates = CANDIDATES
    for folder in candidates:
        if (folder / "index.html").is_file():
            return folder
    _missing("no built book found in " + ", ".join(str(c) for c in candidates)
             + ": run `make book-check` (quick) or `make book` first")


@pytest.fixture(scope="session")
def pages(html_dir) -> dict[str, str]:
    """Every HTML page of the book (not the copied sources or static files), by relative path."""
    found = {}
    for path in sorted(html_dir.rglob("*.html")):
        rel = path.relative_to(html_dir).as_posix()
        if rel.startswith(("_static/", "_sources/", "_images/")):
            continue
        found[rel] = path.read_text(encoding="utf-8")
    assert found, f"{html_dir} holds no HTML pages"
    return found


@pytest.fixture(scope="session")
def chromium():
    """``chromium(*args)``: run headless Chromium with file access for the book's assets."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            break
    else:
        _missing("headless Chromium is not installed (apt-get install -y chromium)")

    def run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
        cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--allow-file-access-from-files", "--hide-scrollbars", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    return run
