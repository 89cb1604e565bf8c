"""The progress bar of reclib's long loops.

``tqdm.auto`` picks tqdm's notebook widget inside Jupyter, and where ipywidgets is missing it
falls back to the text bar with a ``TqdmWarning`` that names a path on the reader's machine.
reclib makes the same choice without the warning: the widget when ipywidgets is installed,
the text bar otherwise (and always outside a notebook, where ``tqdm.auto`` is the text bar).
Without ipywidgets it also imports ``tqdm.auto`` once with that warning silenced, so that the
libraries reclib calls later (transformers, sentence-transformers) get the same quiet fallback.
"""

from __future__ import annotations

import importlib.util
import warnings

if importlib.util.find_spec("ipywidgets") is not None:   # pragma: no cover - environment
    from tqdm.auto import tqdm
else:
    from tqdm.std import TqdmWarning, tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        importlib.import_module("tqdm.auto")   # cached: later imports of it do not warn

__all__ = ["tqdm"]
