"""The scaling benchmark's quick run: every field recorded, with values that make sense.

The run goes into a temporary ``--out`` folder, so it never touches benchmarks/results.
"""

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("implicit")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "scaling.py"
TRAINING_FIELDS = {"model", "label", "size", "n_interactions", "n_train", "n_epochs",
                   "epoch_seconds", "throughput", "throughput_per_epoch", "val_ndcg",
                   "final_ndcg", "time_to_target_s", "target_reached", "peak_memory_mb",
                   "memory_kind", "bytes_per_interaction", "roofline_fraction", "threads",
                   "optimizer", "precision", "device", "throughput_vs_implicit"}


def _load_script():
    spec = importlib.util.spec_from_file_location("scaling_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("scaling")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def quick_run(quick_out):
    out = quick_out
    payload = json.loads((out / "scaling_cpu_quick.json").read_text())
    text = (out / "scaling_cpu_quick.md").read_text()
    # re-rendering the markdown from the JSON gives the file the run wrote
    proc = subprocess.run([sys.executable, str(SCRIPT), "--markdown-only", "--quick", "--out",
                           str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "scaling_cpu_quick.md").read_text() == text
    return payload, text


def test_header_fields(quick_run):
    p, text = quick_run
    assert p["device"] == "cpu" and p["quick"] is True and p["complete"] is True
    assert p["command"].startswith("python benchmarks/scaling.py --quick --out ")
    assert len(p["date"]) == 10
    m = p["machine"]
    for key in ("device_name", "cpu", "cores", "cuda_runtime", "nvidia_driver",
                "torch_threads_default", "numba_threads"):
        assert key in m
    for lib in ("torch", "numpy", "implicit", "reclib"):
        assert m["versions"][lib]
    assert len(p["load_before"]) == 3 and len(p["load_after"]) == 3
    assert p["bandwidth"]["bytes_per_s"] > 1e8
    assert p["bandwidth"]["bytes_per_s"] == max(p["bandwidth"]["by_threads"].values())
    assert 0 < p["target_ndcg"] < 1
    assert "--device cuda" in p["gpu_command"] and p["gpu_command"] in text
    assert "Produced by `python benchmarks/scaling.py --quick" in text
    assert not p["not_run"], p["not_run"]


def test_training_rows(quick_run):
    from reclib.roofline import bytes_per_interaction, ials_sweep_bytes

    p, text = quick_run
    rows = p["training"]
    seen = {(r["model"], r["size"]) for r in rows}
    sizes = sorted({r["size"] for r in rows}, key=lambda s: p["data"][s]["n_interactions"])
    assert len(sizes) == 2
    for model in ("bprmf", "two_tower", "implicit_bpr", "reclib_bpr", "ials"):
        for size in sizes:
            assert (model, size) in seen
    assert ("bprmf_bf16", sizes[0]) in seen and ("bprmf_sparse_adam", sizes[0]) in seen
    for r in rows:
        assert TRAINING_FIELDS <= set(r), TRAINING_FIELDS - set(r)
        assert r["label"] in text
        n_epochs = r["n_epochs"]
        assert len(r["epoch_seconds"]) == n_epochs and min(r["epoch_seconds"]) > 0
        assert r["throughput"] > 0
        np.testing.assert_allclose(r["throughput_per_epoch"],
                                   [r["n_train"] / s for s in r["epoch_seconds"]])
        assert 0 < r["n_train"] < r["n_interactions"]           # the validation rows are out
        assert 0.0 <= r["final_ndcg"] <= 1.0
        assert r["peak_memory_mb"] > 0
        # the roofline numbers are consistent with one another
        assert r["roofline_fraction"] == pytest.approx(
            r["throughput"] * r["bytes_per_interaction"] / p["bandwidth"]["bytes_per_s"])
        assert 0 < r["roofline_fraction"]
        if r["roofline_fraction"] > 1:     # only possible with cache-resident tables; said
            assert "above 1" in text
        if r["model"] == "ials":             # one CG sweep's floor over the training rows
            data = p["data"][r["size"]]
            sweep = ials_sweep_bytes(64, data["n_users"], data["n_items"], r["n_train"],
                                     cg_steps=r["cg_steps"])
            assert r["bytes_per_interaction"] == pytest.approx(sweep / r["n_train"])
        elif r["model"] != "two_tower":
            opt = "sgd" if r["model"] in ("implicit_bpr", "reclib_bpr") else r["optimizer"]
            assert r["bytes_per_interaction"] == bytes_per_interaction(64, opt)
        # time to target: the first epoch at or above the target, its seconds summed
        if r["val_ndcg"] is not None:
            assert len(r["val_ndcg"]) == n_epochs
            hits = [e for e, s in enumerate(r["val_ndcg"], 1) if s >= p["target_ndcg"]]
            assert r["target_reached"] == bool(hits)
            if hits:
                assert r["target_epoch"] == hits[0]
                assert r["time_to_target_s"] == pytest.approx(
                    sum(r["epoch_seconds"][:hits[0]]))
            else:
                assert r["time_to_target_s"] is None
            assert r["final_ndcg"] == r["val_ndcg"][-1]
        else:                                   # numba BPR: the whole fit as a bound
            assert r["time_to_target_s"] is None
            assert r["target_reached"] == (r["final_ndcg"] >= p["target_ndcg"])
        if r["model"] == "implicit_bpr":
            assert r["threads"] == 2 and r["throughput_vs_implicit"] is None
        elif r["model"] == "ials":                     # ALS is not set against BPR
            assert r["throughput_vs_implicit"] is None
        else:
            peer = next(q for q in rows if q["model"] == "implicit_bpr" and
                        q["size"] == r["size"])
            assert r["throughput_vs_implicit"] == pytest.approx(
                r["throughput"] / peer["throughput"])
    precisions = {r["model"]: r["precision"] for r in rows}
    assert precisions["bprmf"] == "fp32" and precisions["bprmf_bf16"] == "bf16"
    optimisers = {r["model"]: r["optimizer"] for r in rows}
    assert optimisers["bprmf"] == "rowwise_adagrad"
    assert optimisers["bprmf_sparse_adam"] == optimisers["bprmf_bf16"] == "sparse_adam"
    assert optimisers["ials"] == "cg" and precisions["ials"] == "fp32"
    assert "reclib TorchImplicitALS (torch, CG, fp32)" in text and "ials_sweep_bytes" in text
    # learning happened: MF-BPR beats a random ranking (nDCG@10 of ~10/n_items) clearly
    for r in rows:
        if r["model"] != "two_tower":
            assert r["final_ndcg"] > 0.5 * p["data"][r["size"]]["popularity_ndcg"]


def test_add_merges_rows_into_an_earlier_run(quick_out, tmp_path):
    """``--add`` re-measures one row in place and keeps everything else of the earlier run."""
    for suffix in (".json", ".md"):
        shutil.copy(quick_out / f"scaling_cpu_quick{suffix}", tmp_path)
    before = json.loads((tmp_path / "scaling_cpu_quick.json").read_text())
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--add", "--models", "ials",
                           "--sizes", "20k", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = json.loads((tmp_path / "scaling_cpu_quick.json").read_text())
    keys = [(r["model"], r["size"]) for r in before["training"]]
    assert [(r["model"], r["size"]) for r in after["training"]] == keys     # replaced in place
    for old, new in zip(before["training"], after["training"]):
        if (old["model"], old["size"]) != ("ials", "20k"):
            assert new == old
    for field in ("bandwidth", "scoring", "machine", "load_before", "load_after"):
        assert after[field] == before[field], field
    assert after["base_run"] == {"command": before["command"], "date": before["date"]}
    added = after["additions"][-1]
    assert added["rows"] == [["ials", "20k"]] and "--add" in added["command"]
    assert after["command"].startswith("python benchmarks/scaling.py --quick --add")
    text = (tmp_path / "scaling_cpu_quick.md").read_text()
    assert "Added later (`--add`): reclib TorchImplicitALS" in text
    assert before["command"] in text
    proc = subprocess.run([sys.executable, str(SCRIPT), "--markdown-only", "--quick", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and (tmp_path / "scaling_cpu_quick.md").read_text() == text


def test_add_without_an_earlier_run_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--add", "--models", "ials",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "--add: there is no" in proc.stderr
    assert not list(tmp_path.iterdir())


def test_scoring_rows(quick_run):
    p, _ = quick_run
    rows = p["scoring"]
    assert [r["n_items"] for r in rows] == [2_000, 20_000]
    for r in rows:
        assert r["n_users"] == 1000 and r["seconds"] > 0 and r["peak_memory_mb"] > 0
        assert r["items_scored_per_s"] == pytest.approx(r["n_users"] * r["n_items"]
                                                        / r["seconds"])


def test_blocked_topk_is_the_core_topk():
    """Blocks of users and items, merged, give exactly the core's answer (ties included)."""
    from reclib.core import topk

    bench = _load_script()
    gen = torch.Generator().manual_seed(0)
    U = torch.randint(-2, 3, (37, 4), generator=gen).float()      # integer scores: many ties
    V = torch.randint(-2, 3, (101, 4), generator=gen).float()
    want_idx, want_val = topk(U @ V.T, 10)
    for budget, block in ((64, 16), (500, 7), (10**6, 101), (30, 10)):
        idx, val = bench.blocked_topk(U, V, 10, budget, block)
        assert torch.equal(idx, want_idx), (budget, block)
        assert torch.equal(val, want_val)


def test_sizes_parse_and_bad_input():
    bench = _load_script()
    assert bench.parse_size("100k") == 100_000
    assert bench.parse_size("1M") == 1_000_000
    assert bench.parse_size("100M") == 100_000_000
    assert bench.parse_size("2.5M") == 2_500_000
    assert bench.parse_size("20000") == 20_000
    for bad in ("1X", "", "-1M", "0.5"):
        with pytest.raises(ValueError, match="size"):
            bench.parse_size(bad)
    assert bench.time_to_target([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], target=0.2) == (3.0, 2)
    assert bench.time_to_target([1.0, 2.0], [0.1, 0.1], target=0.2) == (None, None)
    assert math.isclose(bench.two_tower_bytes(64, 1000, 100), 2 * 2 * 64 * 4
                        + 8 * 4 * 1000 * 64 / 100)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "1Q", "--out", "/tmp"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--sizes" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "--device cuda" in proc.stderr and "no CUDA GPU" in proc.stderr
    assert not list(tmp_path.iterdir())
