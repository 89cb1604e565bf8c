"""Headline facts recorded by notebooks/09_scaling.ipynb (quick mode and the full run)."""

import json

import pytest

import reclib

PATH = reclib.notebook.metrics_dir() / "09_scaling.json"


@pytest.fixture(scope="module")
def payload():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: execute notebooks/09_scaling.ipynb first")
    return json.loads(PATH.read_text())["metrics"]


def test_the_byte_count_by_hand(payload):
    # the page counts 3 rows of 64 fp32 numbers and two biases, read and written
    assert payload["bytes_by_hand"] == {"sgd": 1552, "adam": 4656, "rowwise_adagrad": 1592}
    assert 1e8 < payload["bandwidth"] < 1e13       # a measured bytes/s, not a constant


def test_two_processes_reproduce_one(payload):
    # the page says the 2-process model equals the 1-process one (within 0.01 nDCG@10)
    assert payload["ddp_world_size"] == 2 and payload["ddp_backend"] == "gloo"
    assert abs(payload["ddp_ndcg"] - payload["single_ndcg"]) < 0.01
    assert payload["ddp_weight_spread"] == 0.0


def test_bprmf_learns_and_spark_agrees(payload):
    # both optimisers beat the popularity ranking of chapter 1 (about 0.25 nDCG@10)
    for name, ndcg in payload["bprmf_ndcg"].items():
        assert ndcg > 0.27, (name, ndcg)
    assert payload["spark_gap"] < 0.01
    # and at the largest synthetic size run for 15 sweeps (10M interactions in the record)
    assert payload["spark_big_interactions"] >= 10_000_000
    assert payload["spark_big_gap"] < 0.01


def test_what_the_page_says_of_the_recorded_cpu_benchmark():
    # the page reads benchmarks/results/scaling_cpu.json and says: the fused step is faster
    # than the SparseAdam row; bf16 autocast leaves SparseAdam's scores unchanged epoch by
    # epoch; implicit's loop stays ahead of the torch model; neither reaches the bound
    record = json.loads((reclib.notebook.results_dir() / "scaling_cpu.json").read_text())
    rows = {(r["model"], r["size"]): r for r in record["training"]}
    size = min({r["size"] for r in record["training"]},
               key=lambda s: record["data"][s]["n_interactions"])
    fused, adam = rows[("bprmf", size)], rows[("bprmf_sparse_adam", size)]
    assert fused["optimizer"] == "rowwise_adagrad" and adam["optimizer"] == "sparse_adam"
    assert fused["throughput"] > adam["throughput"]
    assert rows[("bprmf_bf16", size)]["val_ndcg"] == adam["val_ndcg"]
    implicit = rows[("implicit_bpr", size)]
    assert fused["throughput_vs_implicit"] < 1.0
    assert fused["roofline_fraction"] < implicit["roofline_fraction"] < 1.0
