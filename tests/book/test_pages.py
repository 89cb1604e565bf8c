"""What a reader sees on every rendered page: tables that are tables, no leaked noise, no CDN.

Each check scans every HTML page of the built book (see ``conftest.py``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest


class _Page(HTMLParser):
    """Splits a page into its visible text, its cell outputs and the assets it loads."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text, self.outputs, self.scripts, self.styles, self.inline = [], [], [], [], []
        self._skip = 0          # inside <script> or <style>
        self._output_depth = 0  # inside a cell's output <div>
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
            if tag == "script" and attrs.get("src"):
                self.scripts.append(attrs["src"])
        if tag == "link" and "stylesheet" in (attrs.get("rel") or "") and attrs.get("href"):
            self.styles.append(attrs["href"])
        if tag == "div":
            self._depth += 1
            classes = (attrs.get("class") or "").split()
            if self._output_depth == 0 and ("cell_output" in classes or "output" in classes):
                self._output_depth = self._depth

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        if tag == "div":
            if self._output_depth == self._depth:
                self._output_depth = 0
            self._depth -= 1

    def handle_data(self, data):
        if self._skip:
            self.inline.append(data)
            return
        self.text.append(data)
        if self._output_depth:
            self.outputs.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


EXTERNAL = re.compile(r"^(https?:)?//", re.I)
# An absolute file-system path as a build machine would print it.
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])/(?:work|home|root|tmp|usr|opt|var|private|Users)/[\w.-]+")
# In cell outputs: Python warnings (FooWarning), native libraries' log lines (faiss prints
# "WARNING clustering ..."), tracebacks and pathlib reprs.
NOISE = re.compile(r"\b\w*Warning\b|\bWARNING\b|Traceback \(most recent call last\)"
                   r"|\bPosixPath\(")
RAW_TABLE = re.compile(r"\|\s*:?-{3,}:?\s*\|")


def test_every_toc_chapter_is_built(pages):
    names = set(pages)
    for expected in ("book/protocols.html", "book/notation.html", "book/api.html"):
        assert expected in names, f"{expected} is missing from the build"
    assert any(n.startswith("notebooks/") for n in names), "no chapter was built"


@pytest.mark.parametrize("check", ["raw_table", "noise", "absolute_path"])
def test_no_leaks_in_visible_text(pages, check):
    bad = []
    for name, html in pages.items():
        page = parse(html)
        text = "".join(page.text)
        if check == "raw_table":
            hits = RAW_TABLE.findall(text)
        elif check == "noise":
            hits = NOISE.findall("".join(page.outputs)) + re.findall(r"\bPosixPath\(", text)
        else:
            hits = ABSOLUTE_PATH.findall(text)
        bad += [f"{name}: {hit!r}" for hit in hits[:3]]
    assert not bad, f"{len(bad)} leaks ({check}):\n" + "\n".join(bad[:30])


def test_no_external_scripts_or_styles(pages):
    bad = []
    for name, html in pages.items():
        page = parse(html)
        bad += [f"{name}: <script src={s}>" for s in page.scripts if EXTERNAL.match(s)]
        bad += [f"{name}: <link stylesheet {s}>" for s in page.styles if EXTERNAL.match(s)]
        for body in page.inline:  # inline code that would fetch a script or style itself
            bad += [f"{name}: inline {u}" for u in
                    re.findall(r"https?://[^\s\"'<>]+\.(?:m?js|css)\b", body)]
            bad += [f"{name}: @import {u}" for u in re.findall(r"@import\s+url\(\s*['\"]?(https?:[^)'\"]+)", body)]
    assert not bad, "pages load assets from the network:\n" + "\n".join(sorted(set(bad))[:30])


def test_mathjax_is_served_by_the_book(html_dir, pages):
    notation = pages["book/notation.html"]
    srcs = [s for s in parse(notation).scripts if "mathjax" in s.lower()]
    assert srcs, "the notation page loads no MathJax"
    for src in srcs:
        assert not EXTERNAL.match(src), f"MathJax comes from {src}"
        local = (html_dir / "book" / src.split("?")[0]).resolve()
        assert local.is_file(), f"{src} is not in the build ({local})"


def test_thebe_cdn_script_is_gone(pages):
    bad = [name for name, html in pages.items() if "THEBE_JS_URL" in html]
    assert not bad, f"THEBE_JS_URL is still declared on {len(bad)} pages, e.g. {bad[:3]}"


def test_no_page_cites_the_design_notes(pages):
    bad = [name for name, html in pages.items()
           if re.search(r"DESIGN\s*§", "".join(parse(html).text))]
    assert not bad, f"pages cite 'DESIGN §', which readers do not have: {bad}"


def test_chapter_titles_are_numbered(pages):
    """The sidebar lists chapters as their titles; every chapter title starts with its number."""
    titles = {}
    for name, html in pages.items():
        if name.startswith("notebooks/"):
            match = re.search(r"<h1[^>]*>(.*?)<", html, re.S)
            titles[name] = match.group(1).strip() if match else ""
    unnumbered = {n: t for n, t in titles.items() if not re.match(r"(A)?\d+[a-z]?\.\s", t)}
    assert titles and not unnumbered, f"chapter titles without a number: {unnumbered}"
