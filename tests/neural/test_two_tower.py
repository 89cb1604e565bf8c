"""TwoTower: the in-batch softmax with the log-Q correction against a slow reference, masking
of in-batch duplicates of the positive, feature errors, a quick fit and save/load."""

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import reclib  # noqa: E402
from reclib.models import Recommender  # noqa: E402
from reclib.neural import TwoTower  # noqa: E402
from tests.conftest import planted_frame  # noqa: E402


@pytest.fixture(scope="module")
def featured():
    frame = planted_frame()
    users = pd.DataFrame({"user_id": frame["user_id"].unique()})
    users["group"] = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in users["user_id"]]
    items = pd.DataFrame({"item_id": frame["item_id"].unique()})
    items["tags"] = ["a|b" if int(i[1:]) < 15 else "c" for i in items["item_id"]]
    return reclib.Interactions.from_dataframe(frame, user_features=users, item_features=items)


def slow_loss(u, v, items, log_q, temperature, correct):
    """-1/B sum_b log softmax over the batch's columns, a duplicate of the positive left out."""
    total = 0.0
    for b in range(len(items)):
        logits = []
        for c in range(len(items)):
            if c != b and items[c] == items[b]:
                continue                                     # the same item is not a negative
            s = float(u[b] @ v[c]) / temperature - (log_q[c] if correct else 0.0)
            logits.append((c == b, s))
        positive = next(s for is_b, s in logits if is_b)
        total -= positive - math.log(sum(math.exp(s) for _, s in logits))
    return total / len(items)


def tiny_model(data, **params):
    model = TwoTower(n_factors=4, layers=[8], out=4, n_epochs=1, batch_size=16,
                     temperature=0.5, device="cpu", random_state=0, **params).fit(data)
    module = model._build_module().double()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.5)
    return model, module


@pytest.mark.parametrize("correct", [True, False])
def test_in_batch_loss_matches_the_slow_reference(featured, correct):
    model, module = tiny_model(featured, log_q=correct)
    users = torch.tensor([0, 1, 2, 3, 4, 5])
    items = torch.tensor([0, 7, 0, 16, 7, 29])               # items 0 and 7 appear twice
    log_q = torch.log(torch.tensor([0.05, 0.02, 0.05, 0.01, 0.02, 0.005], dtype=torch.float64))
    fast = model._batch_loss(module, (users, items, log_q)).item()
    with torch.no_grad():
        u = module.vectors("user")[users].numpy()
        v = module.vectors("item")[items].numpy()
    slow = slow_loss(u, v, items.tolist(), log_q.tolist(), model.temperature, correct)
    assert fast == pytest.approx(slow, rel=1e-9)


def test_duplicates_of_the_positive_are_masked(featured):
    model, module = tiny_model(featured)
    users = torch.tensor([0, 1, 2])
    log_q = torch.full((3,), math.log(0.1), dtype=torch.float64)
    with torch.no_grad():
        u = module.vectors("user")[users].numpy()
        v = module.vectors("item")[torch.tensor([4, 4, 9])].numpy()
    fast = model._batch_loss(module, (users, torch.tensor([4, 4, 9]), log_q)).item()
    # unmasked, row 0 would count item 4 (its own positive, via row 1) as a negative
    unmasked = slow_loss(u, v, [4, 5, 9], log_q.tolist(), model.temperature, True)
    masked = slow_loss(u, v, [4, 4, 9], log_q.tolist(), model.temperature, True)
    assert fast == pytest.approx(masked, rel=1e-9)
    assert abs(masked - unmasked) > 1e-3


def test_batches_carry_log_q_of_the_item_shares(featured):
    model = TwoTower(n_epochs=1, batch_size=50, device="cpu", random_state=0).fit(featured)
    counts = np.bincount(featured.items, minlength=featured.n_items)
    seen = 0
    for users, items, log_q in model._batches(featured, np.random.default_rng(0)):
        expected = np.log(counts[items.numpy()] / featured.n_interactions)
        np.testing.assert_allclose(log_q.numpy(), expected, rtol=1e-6)
        seen += len(items)
    assert seen == featured.n_interactions


def test_missing_or_mistyped_features_are_clear_errors(featured):
    with pytest.raises(ValueError, match="TwoTower needs feature column 'genres'"):
        TwoTower(features=["genres"], n_epochs=1, device="cpu").fit(featured)
    plain = reclib.Interactions.from_dataframe(planted_frame())
    with pytest.raises(ValueError, match="TwoTower needs feature column 'group'"):
        TwoTower(features=["group"], n_epochs=1, device="cpu").fit(plain)
    with pytest.raises(TypeError, match="features == 'group'"):
        TwoTower(features="group", n_epochs=1, device="cpu").fit(featured)
    with pytest.raises(ValueError, match="layers =="):
        TwoTower(layers=[8, 0], n_epochs=1, device="cpu").fit(featured)
    with pytest.raises(ValueError, match="temperature"):
        TwoTower(temperature=0.0, n_epochs=1, device="cpu").fit(featured)


def test_quick_fit_vectors_and_save_load(featured, tmp_path):
    model = TwoTower(n_factors=8, layers=[16], out=8, n_epochs=30, batch_size=32, lr=0.01,
                     device="cpu", random_state=0).fit(featured)
    assert model.field_names_ == ["user", "item", "group", "tags"]
    assert model.loss_history_[-1] < model.loss_history_[0]
    # unit vectors; the score is their scaled dot product, so serving can index item vectors
    np.testing.assert_allclose(np.linalg.norm(model.item_vectors_, axis=1), 1.0, rtol=1e-6)
    scores = model._score_users(np.arange(3))
    np.testing.assert_allclose(scores, model.user_vectors_[:3] @ model.item_vectors_.T
                               / model.temperature, rtol=1e-5, atol=1e-6)
    items, _ = model.recommend(featured.user_ids, k=3)
    own = [(int(i[1:]) < 15) == (int(u[1:]) % 2 == 0)
           for u, row in zip(featured.user_ids, items) for i in row]
    assert np.mean(own) >= 0.8
    loaded = Recommender.load(model.save(tmp_path / "tower"))
    np.testing.assert_array_equal(loaded.item_vectors_, model.item_vectors_)
    a, b = model.recommend(featured.user_ids, k=5), loaded.recommend(featured.user_ids, k=5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
