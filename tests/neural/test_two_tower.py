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


def slow_loss(u, v, items, log_q, temperature, correct, held=None):
    """-1/B sum_b log softmax over the batch's columns, a duplicate of the positive left out.

    With ``held`` (a set of item indices per row) the row's held items are left out too.
    """
    total = 0.0
    for b in range(len(items)):
        logits = []
        for c in range(len(items)):
            if c != b and items[c] == items[b]:
                continue                                     # the same item is not a negative
            if c != b and held is not None and items[c] in held[b]:
                continue                                     # nor another of the user's items
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


# ---------------------------------------------------------------------- history=True
def topical(n_users=400, n_items=60, n_topics=4, seed=0):
    """Users of ``n_topics`` tastes, each drawing 6-13 items mostly of their own topic.

    Item popularity is skewed (gamma weights) inside each topic, so popularity is a real
    baseline, but a user's history names their topic and the topic names their unseen items.
    """
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % n_topics
    weight = rng.gamma(1.0, 1.0, n_items)
    rows = []
    for u in range(n_users):
        p = np.where(topic == u % n_topics, weight, 0.08 * weight)
        for i in rng.choice(n_items, int(rng.integers(6, 14)), replace=False, p=p / p.sum()):
            rows.append((u, int(i), 1.0))
    return reclib.Interactions.from_dataframe(
        pd.DataFrame(rows, columns=["user_id", "item_id", "rating"]))


@pytest.fixture(scope="module")
def history_model(featured):
    return TwoTower(n_factors=8, layers=[16], out=8, n_epochs=10, batch_size=32, lr=0.01,
                    history=True, device="cpu", random_state=0).fit(featured)


def own_history(model, u):
    return model.history_items_[model.history_indptr_[u]:model.history_indptr_[u + 1]]


def test_history_is_stored_as_csr_of_the_training_items(history_model, featured):
    m = history_model
    assert m.history_indptr_.dtype == np.int64 and m.history_items_.dtype == np.int64
    for u in range(featured.n_users):
        np.testing.assert_array_equal(own_history(m, u),
                                      np.sort(featured.items[featured.users == u]))
    plain = TwoTower(n_factors=4, layers=[], out=4, n_epochs=1, device="cpu",
                     random_state=0).fit(featured)
    assert not hasattr(plain, "history_items_")            # history=False stores nothing new


def test_history_must_be_a_bool(featured):
    with pytest.raises(TypeError, match="history must be True or False, got 'yes'"):
        TwoTower(history="yes", n_epochs=1, device="cpu").fit(featured)
    with pytest.raises(TypeError, match="history must be True or False, got 1"):
        TwoTower(history=1, n_epochs=1, device="cpu").fit(featured)


def test_leave_one_out_input_matches_a_slow_mean(history_model, featured):
    m = history_model
    module = m._build_module().double()
    torch.manual_seed(5)
    with torch.no_grad():
        module.embedding.normal_()
    E = module.embedding.detach().numpy()
    rows = m.item_feature_index_[:, 0]                     # item j's id feature row
    users = torch.as_tensor(featured.users)
    items = torch.as_tensor(featured.items)
    with torch.no_grad():
        fast = module.history_input(users, leave_out=items).numpy()
        full = module.history_input(users).numpy()
    for n, (u, i) in enumerate(zip(featured.users, featured.items)):
        others = [j for j in featured.items[featured.users == u] if j != i]
        slow = E[rows[others]].mean(axis=0) if others else np.zeros(E.shape[1])
        np.testing.assert_allclose(fast[n], slow, rtol=0, atol=1e-12)
        np.testing.assert_allclose(full[n], E[rows[own_history(m, u)]].mean(axis=0),
                                   rtol=0, atol=1e-12)
    # a user with a single item gets the zero vector, not a copy of the target
    module.set_history(np.array([0, 1] + [1] * (m.n_users - 1)), np.array([7]))
    with torch.no_grad():
        lone = module.history_input(torch.tensor([0]), leave_out=torch.tensor([7])).numpy()
    np.testing.assert_array_equal(lone, 0.0)


def test_history_loss_leaves_the_users_items_out_of_the_negatives(history_model, featured):
    m = history_model
    module = m._build_module().double()
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(std=0.5)
    # user 0 twice (two of their items), user 1 with an item user 0 also has
    mine = own_history(m, 0)
    shared = next(j for j in own_history(m, 1) if j in set(mine.tolist()))
    users = torch.tensor([0, 0, 1, 2, 3])
    items = torch.tensor([int(mine[0]), int(mine[1]), int(shared), 29, 16])
    log_q = torch.log(torch.tensor([0.05, 0.02, 0.04, 0.01, 0.03], dtype=torch.float64))
    fast = m._batch_loss(module, (users, items, log_q)).item()
    with torch.no_grad():
        u = module.vectors("user", users, leave_out=items).numpy()
        v = module.vectors("item", items).numpy()
    held = [set(own_history(m, int(b)).tolist()) for b in users]
    slow = slow_loss(u, v, items.tolist(), log_q.tolist(), m.temperature, True, held)
    assert fast == pytest.approx(slow, rel=1e-9)
    unmasked = slow_loss(u, v, items.tolist(), log_q.tolist(), m.temperature, True)
    assert abs(slow - unmasked) > 1e-3


def test_history_save_load_and_encode_users(history_model, featured, tmp_path):
    m = history_model
    np.testing.assert_allclose(np.linalg.norm(m.user_vectors_, axis=1), 1.0, rtol=1e-9)
    scores = m._score_users(np.arange(4))
    np.testing.assert_allclose(scores, m.user_vectors_[:4] @ m.item_vectors_.T / m.temperature,
                               rtol=1e-9, atol=1e-12)
    loaded = Recommender.load(m.save(tmp_path / "history"))
    assert loaded.history is True
    np.testing.assert_array_equal(loaded.history_indptr_, m.history_indptr_)
    np.testing.assert_array_equal(loaded.history_items_, m.history_items_)
    np.testing.assert_array_equal(loaded._score_users(np.arange(m.n_users)),
                                  m._score_users(np.arange(m.n_users)))
    # a training user's own history reproduces their fitted vector (no leave-one-out)
    users = list(range(m.n_users))
    encoded = loaded.encode_users([own_history(m, u)[::-1] for u in users], users)
    assert encoded.shape == (m.n_users, m.out) and encoded.dtype == np.float64
    np.testing.assert_allclose(encoded, m.user_vectors_, rtol=0, atol=1e-6)


def test_the_history_moves_the_vector(history_model):
    m = history_model
    first, second = m.encode_users([[0, 1, 2], [20, 21, 22]])
    assert np.abs(first - second).max() > 1e-2
    grown = m.encode_users([own_history(m, 0).tolist() + [29]], [0])[0]
    assert np.abs(grown - m.user_vectors_[0]).max() > 1e-4
    # an unknown user (None) differs from a known one only by the side-feature fields
    none, known = m.encode_users([[3, 4], [3, 4]], [None, 0])
    assert np.isclose(np.linalg.norm(none), 1.0) and np.abs(none - known).max() > 1e-4
    empty = m.encode_users([[]])
    assert empty.shape == (1, m.out) and np.isfinite(empty).all()


def test_encode_users_bad_inputs_are_clear_errors(history_model, featured):
    m = history_model
    with pytest.raises(ValueError, match=r"histories\[1\] holds item index 30, outside 0 \.\. 29"):
        m.encode_users([[0], [1, 30]])
    with pytest.raises(ValueError, match=r"histories\[0\] holds item index -1"):
        m.encode_users([[-1]])
    with pytest.raises(TypeError, match=r"histories\[0\] has dtype float64, must hold integer"):
        m.encode_users([np.array([1.0, 2.0])])
    with pytest.raises(TypeError, match="histories must be a sequence"):
        m.encode_users(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"users\[0\] == 40, must be None or a user row"):
        m.encode_users([[1]], [40])
    with pytest.raises(ValueError, match="users has 2 entries for 1 histories"):
        m.encode_users([[1]], [0, 1])
    plain = TwoTower(n_factors=4, layers=[], out=4, n_epochs=1, device="cpu",
                     random_state=0).fit(featured)
    with pytest.raises(ValueError, match="encode_users needs a TwoTower fitted with "
                                         "history=True; this one has history=False"):
        plain.encode_users([[1]])


def test_history_model_beats_popularity_on_topical_data():
    from reclib.evaluation.protocols import evaluate_ranking
    from reclib.models import Popularity
    from reclib.split import stratified_split
    train, test = stratified_split(topical(), 0.7, seed=0)
    model = TwoTower(n_factors=16, layers=[32], out=16, n_epochs=10, batch_size=64, lr=0.01,
                     features=None, history=True, device="cpu", random_state=0).fit(train)
    ours = evaluate_ranking(model, train, test, k=10)
    popular = evaluate_ranking(Popularity().fit(train), train, test, k=10)
    assert ours["ndcg@10"] > popular["ndcg@10"] + 0.05
    assert ours["recall@10"] > popular["recall@10"]


@pytest.mark.parametrize("features", [False, True])
def test_bf16_autocast_trains_on_the_cpu_like_fp32(featured, features):
    # the feature products run outside autocast (their bf16 backward fails in torch 2.13)
    data = featured if features else reclib.Interactions.from_dataframe(planted_frame())
    losses = {}
    for precision in ("fp32", "bf16"):
        model = TwoTower(n_factors=8, layers=[16], out=8, n_epochs=3, batch_size=32,
                         precision=precision, device="cpu", random_state=0).fit(data)
        losses[precision] = np.asarray(model.loss_history_)
    assert np.all(np.isfinite(losses["bf16"]))
    np.testing.assert_allclose(losses["bf16"], losses["fp32"], rtol=2e-2)
