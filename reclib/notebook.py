"""Small helpers the book's notebooks share: quick mode and recorded headline metrics.

Every chapter has one parameters cell. In CI, ``RECLIB_QUICK=1`` makes it pick small
settings (fewer epochs, fewer folds) so that the whole book runs in minutes on two cores; the
rendered book runs in full. Each chapter records its headline metrics with
:func:`record_metrics`, and ``tests/notebooks`` checks them within a tolerance.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np


def quick_mode() -> bool:
    """True when ``RECLIB_QUICK=1``: notebooks use their small CI settings."""
    return os.environ.get("RECLIB_QUICK", "0") == "1"


def metrics_dir() -> Path:
    """Where recorded metrics go: ``$RECLIB_METRICS_DIR``, default ``_build/metrics``."""
    return Path(os.environ.get("RECLIB_METRICS_DIR", Path(__file__).resolve().parents[1]
                               / "_build" / "metrics"))


def record_metrics(chapter: str, metrics: dict) -> Path:
    """Write a chapter's headline metrics (and the mode it ran in) to ``<chapter>.json``."""
    def plain(value):
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (np.floating, np.integer)):
            return value.item()
        return value

    path = metrics_dir() / f"{chapter}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"chapter": chapter, "quick": quick_mode(), "machine": machine(),
               "metrics": plain(metrics)}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))
    return path


def machine() -> str:
    """One line describing this machine, printed beside every timing."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.system()}, Python {platform.python_version()}")
