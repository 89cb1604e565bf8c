"""Headline metrics recorded by notebooks/02_matrix_factorisation.ipynb (run it first)."""

import json

import pytest

from reclib.notebook import metrics_dir


@pytest.fixture(scope="module")
def payload():
    path = metrics_dir() / "02_matrix_factorisation.json"
    assert path.exists(), f"{path} is missing: run the notebook first (make notebooks)"
    return json.loads(path.read_text())


def test_gradient_check_and_als_monotone(payload):
    metrics = payload["metrics"]
    assert metrics["gradient_rel_error"] < 1e-6
    assert metrics["als_monotone"] is True


def test_regularised_mf_beats_truncated_svd(payload):
    metrics = payload["metrics"]
    limit = 0.95 if payload["quick"] else 0.94
    assert metrics["funksvd_test_rmse"] < limit
    assert metrics["funksvd_test_rmse"] < metrics["svd_test_rmse"] - 0.02
    assert metrics["funksvd_test_rmse"] < metrics["item_mean_valid_rmse"]


def test_choices_come_from_the_grids(payload):
    metrics = payload["metrics"]
    assert metrics["best_k"] >= 2 and metrics["best_reg"] > 0
    assert metrics["baseline_test_rmse"] == pytest.approx(0.94, abs=0.02)


def test_from_scratch_solvers_match_reclib(payload):
    metrics = payload["metrics"]
    assert metrics["als_half_step_gap"] < 1e-8
    assert metrics["objective_gap"] < 1e-10
    # different random draws: the two SGD runs agree to within a seed's spread
    assert metrics["scratch_sgd_valid_rmse"] == pytest.approx(metrics["funksvd_valid_rmse"], abs=0.01)
    assert metrics["best_als_reg"] > 0
