"""reclib.keras: the TensorFlow twins of GMF and TwoTower against their PyTorch versions
(losses term by term, metric after matched training), save/load, seeding and errors."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

tf = pytest.importorskip("tensorflow")
torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.evaluation.protocols import evaluate_ranking  # noqa: E402
from reclib.keras import KerasGMF, KerasTwoTower  # noqa: E402
from reclib.keras.mf import ranking_loss  # noqa: E402
from reclib.keras.two_tower import in_batch_loss  # noqa: E402
from reclib.models import Recommender  # noqa: E402
from reclib.neural import GMF, TwoTower  # noqa: E402
from reclib.neural.losses import bce_loss, bpr_loss  # noqa: E402
from tests.conftest import own_half, planted_frame  # noqa: E402


@pytest.fixture(scope="module")
def featured():
    frame = planted_frame()
    users = pd.DataFrame({"user_id": frame["user_id"].unique()})
    users["group"] = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in users["user_id"]]
    items = pd.DataFrame({"item_id": frame["item_id"].unique()})
    items["tags"] = ["a|b" if int(i[1:]) < 15 else "c" for i in items["item_id"]]
    return reclib.Interactions.from_dataframe(frame, user_features=users, item_features=items)


def test_import_reclib_does_not_import_tensorflow():
    code = "import sys, reclib, reclib.models; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name, torch_loss", [("bce", bce_loss), ("bpr", bpr_loss)])
def test_ranking_losses_match_pytorch(name, torch_loss):
    rng = np.random.default_rng(0)
    positive, negative = rng.normal(size=7), rng.normal(size=(7, 3))
    ours = float(ranking_loss(name, tf.constant(positive), tf.constant(negative)))
    theirs = torch_loss(torch.tensor(positive), torch.tensor(negative)).item()
    assert ours == pytest.approx(theirs, rel=1e-12)


@pytest.mark.parametrize("correct", [True, False])
def test_in_batch_loss_matches_pytorch(featured, correct):
    model = TwoTower(n_factors=4, layers=[], out=4, n_epochs=1, temperature=0.3, log_q=correct,
                     device="cpu", random_state=0).fit(featured)
    module = model._build_module().double()
    users = torch.tensor([0, 1, 2, 3, 4])
    items = torch.tensor([3, 8, 3, 20, 8])                    # duplicates are masked
    log_q = torch.log(torch.tensor([0.05, 0.02, 0.05, 0.01, 0.02], dtype=torch.float64))
    theirs = model._batch_loss(module, (users, items, log_q)).item()
    with torch.no_grad():
        u = module.vectors("user")[users].numpy()
        v = module.vectors("item")[items].numpy()
    ours = float(in_batch_loss(tf.constant(u), tf.constant(v), tf.constant(items.numpy()),
                               tf.constant(log_q.numpy()), 0.3, correct))
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_gmf_twins_reach_the_same_ndcg(ml100k_topn):
    train, test = ml100k_topn
    params = dict(n_factors=32, n_epochs=8, batch_size=1024, lr=0.005, loss="bpr",
                  n_negatives=4, random_state=0)
    ndcg = {}
    for cls, extra in ((GMF, {"device": "cpu"}), (KerasGMF, {})):
        model = cls(**params, **extra).fit(train)
        ndcg[cls.__name__] = evaluate_ranking(model, train, test, k=10)["ndcg@10"]
    assert ndcg["KerasGMF"] > 0.3                              # popularity is about 0.2
    assert ndcg["KerasGMF"] == pytest.approx(ndcg["GMF"], abs=0.02), ndcg


@pytest.mark.parametrize("cls, params", [
    (KerasGMF, dict(n_factors=8, n_epochs=20, batch_size=128, lr=0.03)),
    (KerasTwoTower, dict(n_factors=8, layers=[16], out=8, n_epochs=40, batch_size=32, lr=0.01)),
])
def test_fit_recovers_groups_and_round_trips(featured, tmp_path, cls, params):
    model = cls(random_state=0, **params).fit(featured)
    assert model.loss_history_[-1] < model.loss_history_[0]
    items, scores = model.recommend(featured.user_ids, k=3)
    assert np.mean([own_half(u, i) for u, row in zip(featured.user_ids, items)
                    for i in row]) >= 0.8
    path = model.save(tmp_path / "model")
    with np.load(path, allow_pickle=False) as npz:
        assert {f"weights/{key}" for key in model.weights_} <= set(npz.files)
    loaded = Recommender.load(path)
    assert type(loaded) is cls   # load rebuilt and checked the model from the weights
    again_items, again_scores = loaded.recommend(featured.user_ids, k=3)
    np.testing.assert_array_equal(again_items, items)
    np.testing.assert_allclose(again_scores, scores, rtol=1e-9)


def test_two_tower_uses_features_and_unit_vectors(featured):
    model = KerasTwoTower(n_factors=4, layers=[8], out=4, n_epochs=2, random_state=0)
    model.fit(featured)
    assert model.field_names_ == ["user", "item", "group", "tags"]
    np.testing.assert_allclose(np.linalg.norm(model.item_vectors_, axis=1), 1.0, rtol=1e-9)
    scores = model._score_users(np.arange(4))
    np.testing.assert_allclose(scores, model.user_vectors_[:4] @ model.item_vectors_.T
                               / model.temperature, rtol=1e-9)
    ids_only = KerasTwoTower(features=None, n_factors=4, layers=[], out=4, n_epochs=1,
                             random_state=0).fit(featured)
    assert ids_only.field_names_ == ["user", "item"]


def test_same_seed_same_weights(featured):
    a = KerasGMF(n_factors=4, n_epochs=2, batch_size=64, random_state=3).fit(featured)
    b = KerasGMF(n_factors=4, n_epochs=2, batch_size=64, random_state=3).fit(featured)
    c = KerasGMF(n_factors=4, n_epochs=2, batch_size=64, random_state=4).fit(featured)
    np.testing.assert_array_equal(a._weight(0), b._weight(0))
    assert not np.array_equal(a._weight(0), c._weight(0))


def test_errors_are_clear(featured):
    with pytest.raises(FloatingPointError, match="loss became"):
        KerasGMF(n_factors=4, n_epochs=3, lr=1e38, random_state=0).fit(featured)
    with pytest.raises(ValueError, match="KerasTwoTower needs feature column 'genres'"):
        KerasTwoTower(features=["genres"], n_epochs=1).fit(featured)
    with pytest.raises(TypeError, match="features == 'group'"):
        KerasTwoTower(features="group", n_epochs=1).fit(featured)
    with pytest.raises(ValueError, match="loss"):
        KerasGMF(loss="hinge").fit(featured)
    with pytest.raises(ValueError, match="n_epochs == 0"):
        KerasGMF(n_epochs=0).fit(featured)
