"""The warm-up problems of ``benchmarks/scale_cpu.py`` and ``scaling.py`` load the kernels the
timed fits run.

The benchmark times ``fit`` after a warm-up on a tiny problem, so that loading numba's
compiled kernels from the cache is not timed. reclib's BPR has two epoch kernels (a plain loop
below ``_N_STRATA * _MIN_GROUP`` items, the stratified parallel one above), and every timed size
runs the stratified one, so the warm-up must run it too.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

import reclib.models.bpr as bpr_module
from reclib import Interactions
from reclib.models import BPR

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale_cpu.py"


def _load_script(path=SCRIPT, name="scale_cpu_bench"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _strata_calls(monkeypatch, data):
    """The arguments' counts of each ``_bpr_epoch_strata`` call in a one-epoch BPR fit."""
    calls = []
    kernel = bpr_module._bpr_epoch_strata

    def spy(*args):
        calls.append(len(args))
        return kernel(*args)

    monkeypatch.setattr(bpr_module, "_bpr_epoch_strata", spy)
    BPR(n_factors=8, n_epochs=1, random_state=0).fit(data)
    return calls


def test_tiny_pairs_cover_the_catalogue_without_repeats():
    users, items, ratings = _load_script().tiny_pairs()
    assert len(np.unique(items)) == 1200
    assert len(np.unique(users.astype(np.int64) * 1200 + items)) == len(users)
    assert users.dtype == items.dtype == np.int32 and ratings.dtype == np.float32
    assert set(np.unique(ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_the_warm_up_runs_bprs_stratified_kernel(monkeypatch):
    users, items, ratings = _load_script().tiny_pairs()
    data = Interactions.from_dataframe(pd.DataFrame({"user_id": users, "item_id": items,
                                                     "rating": ratings}))
    assert data.n_items >= bpr_module._N_STRATA * bpr_module._MIN_GROUP
    calls = _strata_calls(monkeypatch, data)
    assert len(calls) == 1


def test_the_scaling_benchmarks_warm_up_runs_it_too(monkeypatch):
    data = _load_script(SCRIPT.parent / "scaling.py", "scaling_bench")._tiny_interactions()
    assert data.n_items == 1200 >= bpr_module._N_STRATA * bpr_module._MIN_GROUP
    calls = _strata_calls(monkeypatch, data)
    assert len(calls) == 1
