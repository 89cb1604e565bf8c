"""Small helpers the book's notebooks share: quick mode, recorded metrics, benchmark tables.

Every chapter has one parameters cell. In CI, ``RECLIB_QUICK=1`` makes it pick small
settings (fewer epochs, fewer folds) so that the whole book runs in minutes on two cores; the
rendered book runs in full. Each chapter records its headline metrics with
:func:`record_metrics`, and ``tests/notebooks`` checks them within a tolerance. Chapters that
quote the side-by-side benchmarks read them with :func:`benchmark_table`, which turns
``benchmarks/results/<name>.json`` into a :class:`pandas.DataFrame`.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import pandas as pd

_PACKAGE_ROOT = Path(__file__).resolve().parent


def quick_mode() -> bool:
    """True when ``RECLIB_QUICK=1``: notebooks use their small CI settings."""
    return os.environ.get("RECLIB_QUICK", "0") == "1"


def _checkout_root() -> Path | None:
    """The repository root when reclib is imported from a clone (an editable install)."""
    root = _PACKAGE_ROOT.parent
    return root if (root / "pyproject.toml").is_file() and (root / "benchmarks").is_dir() else None


def metrics_dir() -> Path:
    """Where recorded metrics go.

    ``$RECLIB_METRICS_DIR`` when set; otherwise ``_build/metrics`` in the repository when
    reclib runs from a clone; otherwise (an installed wheel, as in Colab)
    ``~/.cache/reclib/metrics``, never the installed package's own folder.
    """
    if os.environ.get("RECLIB_METRICS_DIR"):
        return Path(os.environ["RECLIB_METRICS_DIR"])
    root = _checkout_root()
    if root is not None:
        return root / "_build" / "metrics"
    return Path.home() / ".cache" / "reclib" / "metrics"


def record_metrics(chapter: str, metrics: dict) -> None:
    """Write a chapter's headline metrics (and the mode it ran in) to ``<chapter>.json``.

    The file goes into :func:`metrics_dir`. Nothing is returned, so a notebook cell that ends
    with this call shows no output.
    """
    if not isinstance(chapter, str) or not chapter or Path(chapter).name != chapter:
        raise ValueError(f"chapter must be a plain file stem such as '01_data_and_baselines', "
                         f"got {chapter!r}")
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")

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


def machine() -> str:
    """One line describing this machine, printed beside every timing."""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"{platform.system()}, Python {platform.python_version()}")


# --------------------------------------------------------------------------- benchmark results

BENCHMARKS = ("rating_ml100k", "ranking_ml100k", "deep_ml100k", "tune_deep_ml100k")


def results_dir() -> Path:
    """The folder holding ``benchmarks/results/*.json``.

    Looked up in this order: ``$RECLIB_RESULTS_DIR``; the repository that reclib is imported
    from; ``benchmarks/results`` under the working directory or its parent (a notebook run
    from ``notebooks/``). The Colab cell of each chapter clones the repository at the book's
    release tag and sets ``RECLIB_RESULTS_DIR`` to its ``benchmarks/results``.
    """
    candidates = []
    if os.environ.get("RECLIB_RESULTS_DIR"):
        candidates.append(Path(os.environ["RECLIB_RESULTS_DIR"]))
    root = _checkout_root()
    if root is not None:
        candidates.append(root / "benchmarks" / "results")
    cwd = Path.cwd()
    candidates += [cwd / "benchmarks" / "results", cwd.parent / "benchmarks" / "results"]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(
        "no benchmarks/results folder found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); clone the book's repository, or set RECLIB_RESULTS_DIR to its benchmarks/results")


def load_results(name: str) -> dict:
    """The JSON written by ``benchmarks/<name>.py``, e.g. ``load_results("rating_ml100k")``."""
    if name not in BENCHMARKS:
        raise ValueError(f"name must be one of {BENCHMARKS}, got {name!r}")
    path = results_dir() / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/{name}.py` "
                                f"from the repository root")
    return json.loads(path.read_text())


_RANKING_COLUMNS = {"precision@10": "P@10", "recall@10": "R@10", "ndcg@10": "nDCG@10",
                    "map@10": "MAP@10", "map_rel@10": "MAP_rel@10",
                    "coverage@10": "coverage@10", "fit_s": "fit s"}


def _rating_table(data: dict, part: str) -> pd.DataFrame:
    if part != "main":
        raise ValueError(f"part must be 'main' for rating_ml100k, got {part!r}")
    rows = []
    for r in data["rows"]:
        rows.append({"model": r["model"], "library": r["library"], "setting": r["setting"],
                     "RMSE": np.mean(r["rmse"]), "RMSE sd": np.std(r["rmse"]),
                     "MAE": np.mean(r["mae"]), "MAE sd": np.std(r["mae"]),
                     "fit s": np.mean(r["fit_s"]), "predict s": np.mean(r["predict_s"])})
    return pd.DataFrame(rows).set_index(["model", "library", "setting"])


def _ranking_table(data: dict, part: str) -> pd.DataFrame:
    if part == "main":
        rows = []
        for model, settings in data["models"].items():
            for setting, r in settings.items():
                if setting == "search":
                    continue
                rows.append({"model": model, "setting": setting,
                             **{label: r[key] for key, label in _RANKING_COLUMNS.items()
                                if key in r}})
        table = pd.DataFrame(rows).sort_values("nDCG@10", ascending=False, kind="stable")
        return table.set_index(["model", "setting"])
    if part == "published":
        return pd.DataFrame({"nDCG@10": data["published"]}).rename_axis("model")
    if part == "als_timing":
        table = pd.DataFrame(data["als_timing"]).T.rename_axis("data")
        table["shape"] = [" x ".join(str(n) for n in shape) for shape in table["shape"]]
        return table.astype({c: float for c in ("reclib_s", "implicit_s", "ratio") if c in table})
    raise ValueError(f"part must be 'main', 'published' or 'als_timing' for ranking_ml100k, "
                     f"got {part!r}")


def _deep_table(data: dict, part: str) -> pd.DataFrame:
    if part == "main":
        table = pd.DataFrame(data["ranking"]).rename(columns=_RANKING_COLUMNS)
        order = [c for c in _RANKING_COLUMNS.values() if c in table]
        return table.set_index("model")[order]
    if part == "rating":
        rating = data["rating"]
        table = pd.DataFrame(rating if isinstance(rating, list) else [rating]).rename(
            columns={"rmse": "RMSE", "mae": "MAE", "fit_s": "fit s per fold"})
        return table.drop(columns=[c for c in ("folds",) if c in table]).set_index("model")
    if part == "published":
        published = data["published"]
        values = {k: (v["ndcg@10"] if isinstance(v, dict) else v) for k, v in published.items()}
        return pd.DataFrame({"nDCG@10": values}).rename_axis("model")
    raise ValueError(f"part must be 'main', 'rating' or 'published' for deep_ml100k, got {part!r}")


def _tune_table(data: dict, part: str) -> pd.DataFrame:
    if part != "main":
        raise ValueError(f"part must be 'main' for tune_deep_ml100k, got {part!r}")
    rows = [{"model": r["model"], **r["settings"], "default": r["is_default"],
             "val nDCG@10": r["val_ndcg@10"], "fit s": r["fit_s"]} for r in data["rows"]]
    return pd.DataFrame(rows).set_index("model")


def benchmark_table(name: str, part: str = "main") -> pd.DataFrame:
    """One table of a side-by-side benchmark as a DataFrame, read from its JSON results.

    Parameters
    ----------
    name : str
        ``"rating_ml100k"`` (RMSE and MAE: mean and standard deviation over the five folds,
        mean fit and predict seconds per fold), ``"ranking_ml100k"``, ``"deep_ml100k"`` or
        ``"tune_deep_ml100k"``.
    part : str
        ``"main"`` (default); ``"published"`` for the published numbers quoted beside the
        ranking and deep benchmarks; ``"als_timing"`` (ranking) and ``"rating"`` (deep).

    Returns
    -------
    pandas.DataFrame
        Indexed by model (and library and setting where there are several); the machine the
        benchmark ran on and whether it was a quick run are in ``table.attrs``.
    """
    if not isinstance(part, str):
        raise TypeError(f"part must be a str, got {type(part).__name__}")
    data = load_results(name)
    build = {"rating_ml100k": _rating_table, "ranking_ml100k": _ranking_table,
             "deep_ml100k": _deep_table, "tune_deep_ml100k": _tune_table}[name]
    table = build(data, part)
    table.attrs.update({"benchmark": name, "part": part,
                        "machine": data.get("machine", "unknown"),
                        "quick": bool(data.get("quick", False))})
    return table


def show_table(table: pd.DataFrame, digits: int = 4, caption: str | None = None):
    """``table`` rounded to ``digits`` for display (a pandas Styler, rendered as HTML).

    The caption defaults to the machine the benchmark ran on, from ``table.attrs``. A table
    from :func:`benchmark_table` gets the stable HTML id ``T_<name>_<part>``, which the
    book's rendering checks look for.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a DataFrame, got {type(table).__name__}")
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 0:
        raise ValueError(f"digits must be an int >= 0, got {digits!r}")
    if caption is None and table.attrs.get("part") == "published":
        caption = "Published, not re-run here"
    elif caption is None and "machine" in table.attrs:
        caption = f"Measured on {table.attrs['machine']}" + (
            " (quick run)" if table.attrs.get("quick") else "")
    # Compact cells, so that a ten-column benchmark fits the book's text column.
    styler = table.style.format(precision=digits, na_rep="").set_table_styles([
        {"selector": "", "props": "font-size: 0.8em; border-collapse: collapse;"},
        {"selector": "th, td", "props": "padding: 0.2em 0.6em;"},
        {"selector": "td", "props": "text-align: right; white-space: nowrap;"},
        {"selector": "caption", "props": "caption-side: top; text-align: left;"},
    ])
    if "benchmark" in table.attrs:
        styler = styler.set_uuid(f"{table.attrs['benchmark']}_{table.attrs.get('part', 'main')}")
    return styler.set_caption(caption) if caption else styler
