"""Every symbol in a chapter's formulas is one of book/notation.md, with one meaning.

The check reads the first column of the tables in ``book/notation.md``, splits each formula
of a notebook's markdown cells into symbols (a Latin or Greek letter, with its accent or font:
``\\hat r``, ``\\mathcal{R}``, ``\\tilde A``), and reports the symbols the table does not
define. Text inside ``\\text{...}`` / ``\\operatorname{...}``, code spans, fenced code and block
quotes (quotations of other texts) are not read. Sizes have no letter of their own
(``|\\mathcal{R}(u)|``, never ``n_u``), so a subscripted ``n`` is refused as well.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTATION = ROOT / "book" / "notation.md"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

MATH = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)(.+?)(?<!\\)\$", re.S)
TEXT = re.compile(r"\\(?:text|mathrm|operatorname|textrm|textit|mbox)\s*\{[^{}]*\}")
COMMAND = re.compile(r"\\([A-Za-z]+)")
ARGUMENT = re.compile(r"\s*(?:\{\s*(\\[A-Za-z]+|[A-Za-z0-9])\s*\}|(\\[A-Za-z]+|[A-Za-z0-9]))")
ACCENTS = {"hat", "tilde", "bar", "widehat", "widetilde", "overline", "dot"}
FONTS = {"mathcal", "mathbf", "mathbb", "boldsymbol"}
# Commands that are operators, delimiters or layout, not symbols with a meaning.
STRUCTURE = set("""
sum prod frac tfrac dfrac sqrt left right big Big bigg Bigg lvert rvert lVert rVert vert Vert
langle rangle cdot cdots ldots dots vdots times top le leq ge geq ne neq approx in notin subset
subseteq cup cap setminus to mapsto leftarrow rightarrow Rightarrow quad qquad textstyle
displaystyle log ln exp max min arg argmax argmin lim infty partial nabla circ odot otimes
oplus forall exists mid colon prime ast star pm mp equiv propto sim lfloor rfloor lceil rceil
underbrace overbrace begin end limits nolimits mathop phantom not emptyset varnothing nonumber
tag label ref eqref
""".split())
# Misuses that a list of allowed letters cannot see.
FORBIDDEN = {
    re.compile(r"(?<![A-Za-z\\])n_"): "a size is written |R(u)| or |U|, never with n_",
}


def math_segments(markdown: str) -> list[str]:
    """The formulas of a markdown text, without code, fenced blocks and block quotes."""
    markdown = re.sub(r"```.*?```", " ", markdown, flags=re.S)
    markdown = "\n".join(line for line in markdown.splitlines()
                         if not line.lstrip().startswith(">"))
    markdown = re.sub(r"`[^`]*`", " ", markdown)
    return [m.group(1) or m.group(2) for m in MATH.finditer(markdown)]


def symbols(formula: str) -> list[str]:
    """The symbols of one formula, e.g. ``p_u^\\top q_i`` -> ``['p', 'u', 'q', 'i']``."""
    text = re.sub(r"\\[,;:! ]", " ", TEXT.sub(" ", formula))
    found, pos = [], 0
    while pos < len(text):
        char = text[pos]
        if char == "\\":
            match = COMMAND.match(text, pos)
            if match is None:               # an escaped character such as \{ or \|
                pos += 2
                continue
            name, pos = match.group(1), match.end()
            if name in ACCENTS or name in FONTS:
                arg = ARGUMENT.match(text, pos)
                if arg is not None:
                    inner, pos = arg.group(1) or arg.group(2), arg.end()
                    found.append(f"\\{name}{{{inner}}}" if name in FONTS else f"\\{name} {inner}")
            elif name not in STRUCTURE:
                found.append("\\" + name)
            continue
        if char.isalpha():
            found.append(char)
        pos += 1
    return found


def strip_scripts(formula: str) -> str:
    """The formula without its sub- and superscripts (what a table row defines)."""
    out, pos = [], 0
    while pos < len(formula):
        char = formula[pos]
        if char in "_^":
            pos += 1
            while pos < len(formula) and formula[pos] == " ":
                pos += 1
            if pos < len(formula) and formula[pos] == "{":
                depth = 0
                while pos < len(formula):
                    depth += {"{": 1, "}": -1}.get(formula[pos], 0)
                    pos += 1
                    if depth == 0:
                        break
            elif pos < len(formula) and formula[pos] == "\\":
                match = COMMAND.match(formula, pos)
                pos = match.end() if match else pos + 2
            else:
                pos += 1
            continue
        out.append(char)
        pos += 1
    return "".join(out)


def table_rows(markdown: str) -> list[str]:
    """The first cell of every table row (header and separator rows left out)."""
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        first = line.split(" | ")[0].lstrip("| ").strip()
        if first != "symbol":
            rows.append(first)
    return rows


def allowed_symbols(markdown: str) -> set[str]:
    return {s for row in table_rows(markdown) for f in math_segments(row) for s in symbols(f)}


def violations(markdown: str, allowed: set[str]) -> list[str]:
    """Symbols of ``markdown`` outside ``allowed``, and forbidden forms, as messages."""
    found = []
    for formula in math_segments(markdown):
        unknown = sorted({s for s in symbols(formula) if s not in allowed})
        found += [f"{s!r} in ${formula.strip()}$" for s in unknown]
        found += [f"{why}: ${formula.strip()}$" for pattern, why in FORBIDDEN.items()
                  if pattern.search(formula)]
    return found


@pytest.fixture(scope="module")
def allowed():
    return allowed_symbols(NOTATION.read_text())


def test_the_table_gives_each_symbol_one_row():
    seen: dict[str, str] = {}
    twice = []
    for row in table_rows(NOTATION.read_text()):
        # each formula of the first cell defines its leading symbol: $p_u$, $q_i \\in ...$
        for symbol in {symbols(strip_scripts(f))[0] for f in math_segments(row)}:
            if symbol in seen:
                twice.append(f"{symbol!r} defined in {seen[symbol]!r} and {row!r}")
            seen.setdefault(symbol, row)
    assert len(seen) > 40, "the notation table was not read"
    assert not twice, "\n".join(twice)


def test_the_checker_refuses_symbols_outside_the_table(allowed):
    assert violations(r"$\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i$", allowed) == []
    assert violations(r"the mean $\text{RMSE}$ and $\operatorname{diag}(B)$", allowed) == []
    assert violations("> a quotation keeps its symbols: $K$\n\nand `$f$` is code", allowed) == []
    bad = violations(r"a user with $n_u$ ratings, $f$ factors, $\hat y_{ui}$ and "
                     r"$$\Sigma_{k=1}^{k} K$$", allowed)
    assert any("n_" in v for v in bad)
    assert {v.split(" in ")[0] for v in bad} >= {repr(s) for s in (r"\hat y", r"\Sigma", "K")}


def test_symbols_are_split_with_their_accents_and_fonts():
    assert symbols(r"\hat{r}_{ui} + \tilde A^k + \mathcal R(u) + \lvert x \rvert") == [
        r"\hat r", "u", "i", r"\tilde A", "k", r"\mathcal{R}", "u", "x"]
    assert strip_scripts(r"\mathcal{N}^\kappa_u(i) + b_{ui}") == r"\mathcal{N}(i) + b"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_uses_only_the_table(path, allowed):
    notebook = nbformat.read(path, as_version=4)
    found = [f"cell {index}: {message}"
             for index, cell in enumerate(notebook.cells) if cell.cell_type == "markdown"
             for message in violations(cell.source, allowed)]
    assert not found, f"{path.name} uses symbols outside book/notation.md:\n" + "\n".join(found)
