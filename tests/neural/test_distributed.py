"""Data-parallel training: 2 CPU processes under gloo, launched by torchrun, against 1 process."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from reclib.neural import distributed  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"n_factors": 32, "n_epochs": 5, "batch_size": 1024, "optimizer": "sparse_adam",
          "lr": 0.01, "reg": 0.003, "random_state": 0}
DATA = "ml-100k"


def _torchrun() -> list:
    exe = Path(sys.executable).with_name("torchrun")
    if exe.exists():
        return [str(exe)]
    if shutil.which("torchrun"):
        return ["torchrun"]
    return [sys.executable, "-m", "torch.distributed.run"]


def _run_two(model: str, params: dict, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    command = _torchrun() + ["--standalone", "--nproc_per_node", "2", "-m",
                             "reclib.neural.distributed", "--model", model, "--data", DATA,
                             "--params", json.dumps(params), "--out", str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    return _run_two("BPRMF", PARAMS, tmp_path_factory.mktemp("ddp") / "ddp.json")


def test_two_gloo_processes_reach_the_single_process_ndcg(two_processes):
    single = distributed.run("BPRMF", PARAMS, DATA, "cpu")
    assert two_processes["world_size"] == 2 and two_processes["backend"] == "gloo"
    assert single["world_size"] == 1
    # every process holds the same weights after training
    assert two_processes["max_weight_difference_across_processes"] == 0.0
    assert abs(two_processes["ndcg@10"] - single["ndcg@10"]) < 0.01
    # the shards of one global batch average to the single-process loss (up to summation order)
    for a, b in zip(two_processes["loss_history"], single["loss_history"]):
        assert a == pytest.approx(b, rel=1e-4)
    assert single["ndcg@10"] > 1.3 * _popularity_ndcg()      # it learnt more than popularity


def test_two_tower_under_ddp_keeps_one_model_and_the_single_process_ndcg(tmp_path):
    """The dense path: DistributedDataParallel, with the sparse feature buffers left alone."""
    params = {"n_epochs": 2, "batch_size": 1024, "lr": 0.005, "random_state": 0}
    two = _run_two("TwoTower", params, tmp_path / "two_tower.json")
    single = distributed.run("TwoTower", params, DATA, "cpu")
    assert two["world_size"] == 2 and two["max_weight_difference_across_processes"] == 0.0
    assert abs(two["ndcg@10"] - single["ndcg@10"]) < 0.01
    # in-batch softmax couples a batch's rows: each shard scores its 512 rows against each
    # other instead of 1,024, so the per-shard loss is lower by about log 2
    for a, b in zip(two["loss_history"], single["loss_history"]):
        assert b - a == pytest.approx(math.log(2), abs=0.1)


def _popularity_ndcg() -> float:
    from reclib.evaluation import evaluate_ranking
    from reclib.models import Popularity

    train, test = distributed.load_split(DATA)
    return evaluate_ranking(Popularity().fit(train), train, test, k=10)["ndcg@10"]


def test_average_gradients_is_the_mean_of_the_processes_gradients(tmp_path):
    out = tmp_path / "grads.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    worker = Path(__file__).with_name("_average_gradients_worker.py")
    done = subprocess.run(_torchrun() + ["--standalone", "--nproc_per_node", "2", str(worker),
                                         str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = json.loads(out.read_text())
    assert first == second                        # every process holds the same gradients
    # rank 0: rows 0, 2, 2 with values [0,1], [2,3], [4,5]; rank 1: rows 2, 3 with
    # [10,11], [12,13]; the mean over the 2 processes, row by row
    expected = [[0.0, 0.5], [0.0, 0.0], [(2 + 4 + 10) / 2, (3 + 5 + 11) / 2], [6.0, 6.5],
                [0.0, 0.0]]
    assert first["table"] == expected and first["table_is_sparse"]
    assert first["other"] == [[0.0, 0.0], [2.0, 3.0], [0.0, 0.0]]   # absent on rank 1
    assert first["dense"] == [[1.5, 1.5]]


def test_outside_torchrun_the_process_group_is_a_clear_error(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="start this with torchrun"):
        distributed.init_process_group("cpu")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="model == 'SVD'"):
        distributed.build_model("SVD", {})
    with pytest.raises(ValueError, match="data == 'ml-1m'"):
        distributed.load_split("ml-1m")
