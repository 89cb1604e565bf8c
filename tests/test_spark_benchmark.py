"""``benchmarks/spark_als.py --add``: merging a later run into the results file.

The fits themselves take minutes and are not run here (``tests/test_spark_als.py`` checks
SparkALS at small size); these tests hold the bookkeeping: which blocks are kept, replaced or
renamed, what the file records about each run, and the refusal of unknown ``--models``.
"""

import copy
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "spark_als.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("spark_als_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(ndcg, fit_s, spark=False):
    row = {"ndcg@10": ndcg, "precision@10": 0.1, "recall@10": 0.2, "fit_s": fit_s,
           "load_before": 1.0, "load_after": 1.0}
    if spark:
        row["spark_als_fit_s"] = fit_s - 1.0
    return row


def _block(epochs, spark_ndcg, cg_ndcg, exact=True):
    rows = {"Spark MLlib ALS": _row(spark_ndcg, 100.0, spark=True),
            "reclib ImplicitALS cg (count)": _row(cg_ndcg, 10.0)}
    if exact:
        rows["reclib ImplicitALS exact (count)"] = _row(cg_ndcg, 50.0)
    return {"n_interactions": 1000, "train_interactions": 750, "shape": [50, 20],
            "n_epochs": epochs, "eval_users": 40, "rows": rows}


@pytest.fixture
def earlier(bench):
    return {"machine": "m", "spark_version": "4", "master": "local[2]", "java": "j",
            "numba_threads": 2, "openblas_threads": "1", "load_start": [1.0, 1.0, 1.0],
            "load_end": [1.0, 1.0, 1.0], "published": bench.PUBLISHED, "notes": ["first"],
            "movielens_100k": {"params": {"n_factors": 64, "n_epochs": 15, "reg": 0.3,
                                          "alpha": 1.0},
                               "train_interactions": 75, "rows": {
                                   "Spark MLlib ALS": _row(0.47, 50.0, spark=True),
                                   "reclib ImplicitALS cg (count)": _row(0.48, 1.0)}},
            "synthetic": {"1M": _block(15, 0.22, 0.22), "10M": _block(3, 0.19, 0.20)},
            "command": "python benchmarks/spark_als.py --sizes 1M,10M:3", "date": "2026-12-02"}


def test_block_key_marks_only_non_default_sweeps(bench):
    assert bench.block_key("10M", bench.EPOCHS) == "10M"
    assert bench.block_key("10M", 3) == "10M:3"


def test_merge_keeps_the_earlier_blocks_and_records_both_runs(bench, earlier, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/spark_als.py", "--sizes", "10M",
                                      "--models", "spark,cg", "--add"])
    before = copy.deepcopy(earlier)
    new = {"synthetic": {"10M": _block(15, 0.200, 0.203, exact=False)},
           "load_start": [2.0, 2.0, 2.0], "load_end": [3.0, 3.0, 3.0], "notes": ["second"]}
    res = bench.merge(earlier, new, ["10M"])
    assert earlier == before                                  # the input is not modified
    # the earlier 3-sweep block is renamed, not overwritten, by the new 15-sweep one
    assert list(res["synthetic"]) == ["1M", "10M:3", "10M"]
    assert res["synthetic"]["10M:3"] == earlier["synthetic"]["10M"]
    assert res["synthetic"]["10M"] == new["synthetic"]["10M"]
    assert res["movielens_100k"] == earlier["movielens_100k"]
    assert res["base_run"] == {"command": earlier["command"], "date": earlier["date"]}
    (addition,) = res["additions"]
    assert addition["sizes"] == ["10M"]
    assert addition["command"] == ("python benchmarks/spark_als.py --sizes 10M --models "
                                   "spark,cg --add")
    assert res["notes"] == ["first", "second"]
    # a second addition of the same size replaces that block and is recorded too
    again = bench.merge(res, {**new, "synthetic": {"10M": _block(15, 0.21, 0.21, False)}},
                        ["10M"])
    assert again["synthetic"]["10M"]["rows"]["Spark MLlib ALS"]["ndcg@10"] == 0.21
    assert len(again["additions"]) == 2 and again["base_run"] == res["base_run"]


def test_summary_and_markdown_of_a_merged_file(bench, earlier, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["benchmarks/spark_als.py", "--add"])
    new = {"synthetic": {"10M": _block(15, 0.200, 0.203, exact=False)},
           "load_start": [2.0] * 3, "load_end": [2.0] * 3, "notes": []}
    res = bench.merge(earlier, new, ["10M"])
    res["summary"] = bench.summary(res)
    lines = [s for s in res["summary"] if s.startswith("synthetic 10M, 15 sweeps")]
    # no exact-solver row in the new block, so one line, with the difference it measured
    assert len(lines) == 1 and "difference +0.0030" in lines[0]
    assert any(s.startswith("synthetic 10M, 3 sweeps, reclib ImplicitALS exact")
               for s in res["summary"])
    text = bench.markdown(res)
    assert text.count("## Synthetic 10M (") == 2
    assert "Added later (`--add`): synthetic 10M, by `python benchmarks/spark_als.py --add`" \
        in text


def test_unknown_models_are_refused_by_name(bench, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["spark_als.py", "--models", "spark,als"])
    with pytest.raises(SystemExit):
        bench.main()
    assert "--models: 'spark,als' must name some of ['spark', 'exact', 'cg']" in \
        capsys.readouterr().err
