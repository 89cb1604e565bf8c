"""Where the benchmark scripts write their results: ``results/<name>.json`` and ``.md``."""

from __future__ import annotations

import datetime
import json
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict, text: str, quick: bool) -> Path:
    """Write ``payload`` as JSON and ``text`` as markdown; quick runs get a ``_quick`` suffix
    (ignored by git), so a smoke test never overwrites the headline numbers.

    Both files record the exact command that produced them and the date of the run."""
    command = "python " + " ".join(shlex.quote(a) for a in
                                   [str(Path(sys.argv[0]).relative_to(RESULTS.parent.parent))
                                    if Path(sys.argv[0]).is_absolute() else sys.argv[0]]
                                   + sys.argv[1:])
    date = datetime.date.today().isoformat()
    payload = {**payload, "command": command, "date": date}
    text = text.rstrip("\n") + f"\n\nProduced by `{command}` on {date}.\n"
    stem = RESULTS / (f"{name}_quick" if quick else name)
    RESULTS.mkdir(exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2))
    stem.with_suffix(".md").write_text(text)
    print(text)
    return stem
