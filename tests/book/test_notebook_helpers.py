"""reclib.notebook: where metrics go, and the benchmark tables the chapters show."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import reclib.notebook as nb

RESULTS = nb._PACKAGE_ROOT.parent / "benchmarks" / "results"


def test_record_metrics_returns_nothing_and_writes_plain_json(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLIB_METRICS_DIR", str(tmp_path))
    assert nb.record_metrics("99_example", {"ndcg@10": np.float32(0.5), "n": np.int64(3),
                                            "nested": {1: np.float64(0.25)}}) is None
    payload = json.loads((tmp_path / "99_example.json").read_text())
    assert payload["metrics"] == {"ndcg@10": 0.5, "n": 3, "nested": {"1": 0.25}}
    assert payload["chapter"] == "99_example" and isinstance(payload["quick"], bool)


@pytest.mark.parametrize("chapter", ["", "../escape", "a/b", 3])
def test_record_metrics_refuses_a_bad_chapter(chapter, tmp_path, monkeypatch):
    monkeypatch.setenv("RECLIB_METRICS_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="chapter"):
        nb.record_metrics(chapter, {})


def test_record_metrics_refuses_non_dict(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLIB_METRICS_DIR", str(tmp_path))
    with pytest.raises(TypeError, match="metrics must be a dict"):
        nb.record_metrics("x", [("a", 1)])


def test_metrics_dir_outside_a_clone_is_never_site_packages(tmp_path, monkeypatch):
    monkeypatch.delenv("RECLIB_METRICS_DIR", raising=False)
    monkeypatch.setattr(nb, "_checkout_root", lambda: None)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert nb.metrics_dir() == tmp_path / ".cache" / "reclib" / "metrics"


def test_results_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(tmp_path))
    assert nb.results_dir() == tmp_path


def test_results_dir_explains_what_to_do_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("RECLIB_RESULTS_DIR", raising=False)
    monkeypatch.setattr(nb, "_checkout_root", lambda: None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="RECLIB_RESULTS_DIR"):
        nb.results_dir()


def test_rating_table_matches_the_json(monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(RESULTS))
    rows = json.loads((RESULTS / "rating_ml100k.json").read_text())["rows"]
    table = nb.benchmark_table("rating_ml100k")
    assert len(table) == len(rows)
    for r in rows:
        got = table.loc[(r["model"], r["library"], r["setting"])]
        assert got["RMSE"] == pytest.approx(np.mean(r["rmse"]))
        assert got["MAE sd"] == pytest.approx(np.std(r["mae"]))
    assert table.attrs["benchmark"] == "rating_ml100k" and "cores" in table.attrs["machine"]


def test_ranking_table_is_sorted_and_complete(monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(RESULTS))
    data = json.loads((RESULTS / "ranking_ml100k.json").read_text())
    table = nb.benchmark_table("ranking_ml100k")
    n_expected = sum(len([s for s in v if s != "search"]) for v in data["models"].values())
    assert len(table) == n_expected
    assert table["nDCG@10"].is_monotonic_decreasing
    r = data["models"]["reclib: EASE"]["tuned"]
    assert table.loc[("reclib: EASE", "tuned"), "MAP_rel@10"] == pytest.approx(r["map_rel@10"])
    published = nb.benchmark_table("ranking_ml100k", "published")
    assert published["nDCG@10"].to_dict() == data["published"]


def test_deep_tables(monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(RESULTS))
    data = json.loads((RESULTS / "deep_ml100k.json").read_text())
    main = nb.benchmark_table("deep_ml100k")
    assert list(main.index) == [r["model"] for r in data["ranking"]]
    assert list(main.columns)[:4] == ["P@10", "R@10", "nDCG@10", "MAP@10"]
    assert len(nb.benchmark_table("deep_ml100k", "rating")) >= 1


@pytest.mark.parametrize("name, part", [("nope", "main"), ("rating_ml100k", "published"),
                                        ("ranking_ml100k", "rating")])
def test_benchmark_table_refuses_unknown_names(name, part, monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(RESULTS))
    with pytest.raises(ValueError, match=repr(name) if name == "nope" else repr(part)):
        nb.benchmark_table(name, part)


def test_show_table_gives_a_stable_id_and_caption(monkeypatch):
    monkeypatch.setenv("RECLIB_RESULTS_DIR", str(RESULTS))
    html = nb.show_table(nb.benchmark_table("ranking_ml100k")).to_html()
    assert 'id="T_ranking_ml100k_main"' in html and "Measured on" in html
    html = nb.show_table(nb.benchmark_table("ranking_ml100k", "published")).to_html()
    assert "Published, not re-run" in html
    with pytest.raises(ValueError, match="digits"):
        nb.show_table(pd.DataFrame({"a": [1.0]}), digits=-1)
    with pytest.raises(TypeError, match="table must be a DataFrame"):
        nb.show_table([1, 2])
