"""The rendered book in headless Chromium: math typeset offline, comparison tables laid out.

The browser runs without network access to anything but the build folder (file:// pages and
the book's own static files), so what renders here renders for an offline reader.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from reclib.notebook import benchmark_table

WINDOW = "--window-size=1280,1000"


def _with_script(html_dir: Path, page: str, script: str, tmp_path: Path) -> Path:
    """A copy of ``page`` whose relative links still resolve, with ``script`` run at its end."""
    source = html_dir / page
    base = f'<base href="{source.parent.resolve().as_uri()}/">'
    html = source.read_text(encoding="utf-8")
    html = html.replace("<head>", "<head>" + base, 1)
    # At the end of the body the stylesheets have loaded, so the layout is the reader's.
    html = html.replace("</body>", f"<script>{{{script}}}</script></body>", 1)
    tmp_path.mkdir(parents=True, exist_ok=True)
    copy = tmp_path / Path(page).name
    copy.write_text(html, encoding="utf-8")
    return copy


def _dump_dom(chromium: str, path: Path, budget_ms: int = 20000) -> str:
    result = chromium(WINDOW, f"--virtual-time-budget={budget_ms}", "--dump-dom",
                          path.resolve().as_uri())
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def test_mathjax_typesets_the_notation_page_offline(html_dir, chromium):
    page = html_dir / "book" / "notation.html"
    source = page.read_text(encoding="utf-8")
    n_math = len(re.findall(r'class="math[ "]', source))
    assert n_math >= 20, f"the notation page has only {n_math} math elements"
    dom = _dump_dom(chromium, page)
    rendered = len(re.findall(r"<mjx-container\b", dom))
    errors = len(re.findall(r"<mjx-merror\b", dom))
    assert errors == 0, f"{errors} formulas failed to typeset"
    # Every math element becomes at least one typeset container (display math with several
    # lines can give more); none is left as raw TeX.
    assert rendered >= n_math, f"MathJax rendered {rendered} of {n_math} math elements"


MEASURE = """
const t = document.getElementById(%(id)r);
const out = document.createElement('pre'); out.id = 'reclib-measure';
if (!t) { out.textContent = JSON.stringify({found: false}); }
else {
  const rows = [...t.querySelectorAll('tbody tr')];
  const first = rows.length ? [...rows[0].children].map(c => c.getBoundingClientRect().left) : [];
  let scroller = t.parentElement, scrolls = false;
  while (scroller && scroller !== document.body) {
    const o = getComputedStyle(scroller).overflowX;
    if (o === 'auto' || o === 'scroll') { scrolls = true; break; }
    scroller = scroller.parentElement;
  }
  const article = document.querySelector('article') || document.body;
  out.textContent = JSON.stringify({found: true, display: getComputedStyle(t).display,
    n_rows: rows.length, lefts: first, heights: rows.map(r => r.getBoundingClientRect().height),
    width: t.getBoundingClientRect().width, article: article.getBoundingClientRect().width,
    scrolls: scrolls, text: t.innerText});
}
document.body.appendChild(out);
"""


# Headless screenshots do not follow a scrolled page, so the screenshot copy moves the table's
# cell output to the top of the chapter's column, where it keeps the page's styles and width.
SHOW = """
const t = document.getElementById(%(id)r);
const box = t.closest('.cell_output') || t.parentElement;
(document.querySelector('article') || document.body).prepend(box);
"""


@pytest.mark.parametrize("page, benchmark", [
    ("notebooks/03_biases_and_svdpp.html", "rating_ml100k"),
    ("notebooks/04_implicit_feedback.html", "ranking_ml100k"),
])
def test_comparison_table_renders_as_a_table(html_dir, chromium, tmp_path, page, benchmark):
    table_id = f"T_{benchmark}_main"
    assert f'id="{table_id}"' in (html_dir / page).read_text(encoding="utf-8"), \
        f"{page} has no table {table_id}"
    copy = _with_script(html_dir, page, MEASURE % {"id": table_id}, tmp_path)
    dom = _dump_dom(chromium, copy)
    match = re.search(r'<pre id="reclib-measure"[^>]*>(.*?)</pre>', dom, re.S)
    assert match, "the measuring script did not run"
    m = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&")
                   .replace("&lt;", "<").replace("&gt;", ">"))
    assert m["found"] and m["display"] == "table", m
    expected = benchmark_table(benchmark)
    assert m["n_rows"] == len(expected), (m["n_rows"], len(expected))
    # The cells of a row sit side by side: one column per index level and value column.
    lefts = m["lefts"]
    assert len(lefts) >= expected.shape[1] and all(b > a for a, b in zip(lefts, lefts[1:])), lefts
    heights = np.array(m["heights"])
    assert heights.min() > 5 and heights.max() < 3 * np.median(heights), heights
    assert "|" not in m["text"] and "---" not in m["text"]
    assert m["width"] <= m["article"] + 1 or m["scrolls"], \
        f"the table ({m['width']:.0f}px) is wider than the page ({m['article']:.0f}px) and does not scroll"

    # The screenshot a reader would see, scrolled to the table; kept beside the build.
    shots = html_dir.parent / "screenshots"
    shots.mkdir(exist_ok=True)
    png = shots / f"{Path(page).stem}_{benchmark}.png"
    png.unlink(missing_ok=True)
    shown = _with_script(html_dir, page, SHOW % {"id": table_id}, tmp_path / "shown")
    result = chromium(WINDOW, "--virtual-time-budget=20000",
                      f"--screenshot={png}", shown.resolve().as_uri())
    assert result.returncode == 0 and png.is_file(), result.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(png)[..., :3]
    assert pixels.shape[:2] == (1000, 1280), pixels.shape
    # A table is many thin rules and lines of text: far from a blank or single-colour page.
    grey = pixels.mean(axis=2)
    dark_rows = (grey < 0.6).any(axis=1).mean()
    assert grey.std() > 0.05 and dark_rows > 0.3, (grey.std(), dark_rows)
