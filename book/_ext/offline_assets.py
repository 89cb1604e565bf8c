"""Sphinx extension: the book serves its own assets, so that every page reads offline.

- MathJax 3 comes from npm (``package.json``; ``npm ci`` puts it in ``node_modules/``) and is
  copied into the build's static folder, ``_build/html/_static/mathjax/``; ``mathjax_path``
  points there instead of a CDN.
- sphinx-thebe, which Jupyter Book 1.x always loads, adds an inline script that declares
  ``THEBE_JS_URL`` (a CDN address) on every page, twice when the extension's set-up runs
  twice. The book has no live-code cells (the launch buttons open Colab or Binder instead),
  so its scripts are dropped from every page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

MATHJAX_TARGET = "mathjax"


def _mathjax_source(app: Sphinx) -> Path:
    return Path(app.confdir) / "node_modules" / "mathjax" / "es5"


def _check_mathjax(app: Sphinx, config) -> None:
    source = _mathjax_source(app)
    if not (source / "tex-chtml.js").is_file():
        raise ExtensionError(f"MathJax is not installed at {source.relative_to(app.confdir)}: "
                             f"run `npm ci` in the repository root (or `make book`)")
    config.mathjax_path = f"{MATHJAX_TARGET}/tex-chtml.js"


def _is_thebe(script) -> bool:
    filename = str(getattr(script, "filename", "") or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return filename.endswith("sphinx-thebe.js") or "THEBE_JS_URL" in body


def _drop_thebe(app: Sphinx, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:
        context["script_files"] = [s for s in context["script_files"] if not _is_thebe(s)]


def _copy_mathjax(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / MATHJAX_TARGET
    shutil.copytree(_mathjax_source(app), target, dirs_exist_ok=True)


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _check_mathjax)
    app.connect("html-page-context", _drop_thebe)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
