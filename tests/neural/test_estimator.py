"""The estimator wrapper: fit/score/save/load of any module, errors, and torch-free core."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.models import Recommender  # noqa: E402
from reclib.neural import GMF, LightGCN, NeuralRecommender  # noqa: E402

FAST = dict(n_factors=4, n_epochs=3, batch_size=256, lr=1e-2, device="cpu", random_state=0)


def test_importing_reclib_does_not_import_torch():
    code = "import sys, reclib; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_save_load_round_trip_rebuilds_the_module(planted, tmp_path):
    model = GMF(**FAST).fit(planted)
    path = model.save(tmp_path / "gmf")
    loaded = Recommender.load(path)
    assert isinstance(loaded, GMF) and list(loaded.weights_) == list(model.weights_)
    np.testing.assert_allclose(loaded.score_block(np.arange(5)), model.score_block(np.arange(5)))
    with np.load(path, allow_pickle=False) as npz:
        assert {f"weights/{key}" for key in model.weights_} <= set(npz.files)


def test_state_is_plain_numpy_after_fit(planted):
    model = GMF(**FAST).fit(planted)
    assert list(model.weights_) == list(model._get_module().state_dict())
    assert all(isinstance(a, np.ndarray) for a in model.weights_.values())
    assert len(model.loss_history_) == 3 and model.best_epoch_ == 3


def test_unavailable_device_is_a_clear_error(planted):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="no CUDA"):
        GMF(**{**FAST, "device": "cuda"}).fit(planted)


def test_unknown_ids_use_the_base_class_error(planted):
    model = GMF(**FAST).fit(planted)
    with pytest.raises(ValueError, match="unknown user"):
        model.recommend(["nobody"])


def test_patience_without_validation_is_named(planted):
    with pytest.raises(ValueError, match="patience == 2 needs validation data"):
        GMF(**{**FAST, "patience": 2}).fit(planted)


def test_validation_split_and_early_stopping(planted):
    model = LightGCN(**{**FAST, "n_epochs": 30, "validation_fraction": 0.2, "patience": 2})
    model.fit(planted)
    assert 1 <= model.best_epoch_ <= len(model.val_history_) <= 30
    assert model.val_history_[model.best_epoch_ - 1] == model.val_history_.max()


def test_nan_inputs_surface_as_floating_point_error(planted):
    """An absurd learning rate makes the BCE loss overflow: training stops loudly."""
    model = GMF(**{**FAST, "lr": 1e30, "n_epochs": 5})
    with pytest.raises(FloatingPointError, match="lr == 1e\\+30"):
        model.fit(planted)


def test_a_module_without_build_is_an_error(planted):
    with pytest.raises(TypeError, match="uses the setting 'n_epochs' but its constructor"):
        NeuralRecommender().fit(planted)

    class NoModule(NeuralRecommender):
        def __init__(self, n_epochs=1, batch_size=8, lr=0.01, weight_decay=0.0, patience=None,
                     validation_fraction=0.0, device="cpu", random_state=0, verbose=False,
                     loss="bpr", n_negatives=1, sampler="uniform"):
            for name, value in locals().items():
                if name != "self":
                    setattr(self, name, value)

    with pytest.raises(NotImplementedError):
        NoModule().fit(planted)


@pytest.mark.slow
def test_gmf_beats_popularity_on_movielens(ml100k_topn):
    train, test = ml100k_topn
    model = GMF(n_epochs=8, device="cpu", random_state=0).fit(train)
    pop = reclib.models.Popularity().fit(train)
    ours = reclib.evaluation.evaluate_ranking(model, train, test)["ndcg@10"]
    assert ours > reclib.evaluation.evaluate_ranking(pop, train, test)["ndcg@10"]
