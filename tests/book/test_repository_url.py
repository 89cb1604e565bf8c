"""The repository's address and the release tag are written in one place, pyproject.toml;
everything a reader follows (the book's buttons, the README, the citation, the Colab cells)
agrees with it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

import reclib

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
URL = PROJECT["urls"]["Repository"]
VERSION = reclib.__version__   # pyproject.toml reads it from reclib/_version.py
TAG = f"v{VERSION}"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_distribution_and_import_names():
    assert PROJECT["name"] != "reclib", "`reclib` on PyPI is another project"
    assert PROJECT.get("version", VERSION) == VERSION


def test_config_points_at_the_repository():
    text = (ROOT / "_config.yml").read_text()
    assert re.search(rf"^\s*url:\s*{re.escape(URL)}\s*$", text, re.M), \
        f"_config.yml's repository url is not {URL}"


@pytest.mark.parametrize("name", ["README.md", "CITATION.cff", "book/how_to_use.md",
                                  "CONTRIBUTING.md"])
def test_documents_use_the_one_url(name):
    text = (ROOT / name).read_text()
    urls = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text))
    assert urls == {URL}, f"{name} names {urls}, expected only {URL}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_cell_installs_this_package_at_the_release_tag(path):
    cell = json.loads(path.read_text())["cells"][1]
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    assert "google.colab" in source
    assert f'"{URL}", "{TAG}"' in source, f"{path.name}: the Colab cell does not pin {URL} at {TAG}"
    # Installing an extra would replace Colab's own torch or TensorFlow.
    assert "[torch" not in source and "[tf" not in source and "tensorflow" not in source


@pytest.mark.parametrize("module", ["reclib/neural/__init__.py", "reclib/keras/__init__.py"])
def test_install_hints_name_this_distribution(module):
    hints = re.findall(r"pip install '([^'\[]+)\[", (ROOT / module).read_text())
    assert hints and set(hints) == {PROJECT["name"]}, hints
