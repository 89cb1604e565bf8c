"""Where the benchmark scripts write their results: ``results/<name>.json`` and ``.md``."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict, text: str, quick: bool) -> Path:
    """Write ``payload`` as JSON and ``text`` as markdown; quick runs get a ``_quick`` suffix
    (ignored by git), so a smoke test never overwrites the headline numbers."""
    stem = RESULTS / (f"{name}_quick" if quick else name)
    RESULTS.mkdir(exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    stem.with_suffix(".md").write_text(text)
    print(text)
    return stem
