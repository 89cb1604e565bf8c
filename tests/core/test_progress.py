"""reclib's progress bars: no tqdm.auto fallback warning in a notebook without ipywidgets."""

import importlib
import io
import importlib.util
import re
import warnings
from pathlib import Path

import tqdm.std

import reclib._progress as progress

PACKAGE = Path(progress.__file__).resolve().parent


def test_the_text_bar_is_chosen_without_ipywidgets(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    module = importlib.reload(progress)
    try:
        assert module.tqdm is tqdm.std.tqdm
        with warnings.catch_warnings():
            warnings.simplefilter("error")        # a TqdmWarning would fail here
            assert sum(module.tqdm(range(3), disable=False, file=io.StringIO())) == 3
    finally:
        monkeypatch.undo()
        importlib.reload(progress)


def test_no_module_imports_tqdm_auto_directly():
    offenders = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                 if path.name != "_progress.py"
                 and re.search(r"^\s*from tqdm\.auto import|^\s*import tqdm\.auto",
                               path.read_text(), re.M)]
    assert offenders == []
