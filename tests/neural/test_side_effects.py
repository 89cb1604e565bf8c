"""Fitting and importing leave the process as they found it: no global seed, thread count or
environment variable changes."""

import os
import subprocess
import sys

import torch

import reclib
from reclib.neural import GMF, LightGCN
from tests.conftest import planted_frame


def test_fit_does_not_touch_torch_global_random_state_or_threads():
    data = reclib.Interactions.from_dataframe(planted_frame())
    torch.manual_seed(1234)
    state = torch.get_rng_state().clone()
    threads = torch.get_num_threads()
    GMF(n_factors=4, n_epochs=2, device="cpu", random_state=0).fit(data)
    LightGCN(n_factors=4, n_layers=1, n_epochs=2, device="cpu", random_state=0,
             validation_fraction=0.2, patience=1).fit(data)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_same_seed_same_model_whatever_the_global_seed():
    data = reclib.Interactions.from_dataframe(planted_frame())
    torch.manual_seed(1)
    a = GMF(n_factors=4, n_epochs=2, device="cpu", random_state=5).fit(data)
    torch.manual_seed(2)
    b = GMF(n_factors=4, n_epochs=2, device="cpu", random_state=5).fit(data)
    for key in a.weights_:
        assert (a.weights_[key] == b.weights_[key]).all(), key


def test_importing_reclib_keras_sets_no_environment_variable():
    code = ("import os; before = dict(os.environ); import reclib.keras; "
            "print(sorted(set(os.environ.items()) - set(before.items())))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert not [line for line in out.stdout.splitlines() if "KERAS" in line], out.stdout
