"""FM and DeepFM: the O(kn) identity against the O(kn^2) double sum, the module against a
literal FM on the dense feature vector, feature errors and a quick fit."""

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import reclib  # noqa: E402
from reclib.features import build_layout  # noqa: E402
from reclib.neural import FM, DeepFM  # noqa: E402
from reclib.neural.fm import FMModule, fm_pairwise  # noqa: E402
from tests.conftest import planted_frame  # noqa: E402


def double_sum(v, x):
    """sum_{i<j} <v_i, v_j> x_i x_j, literally."""
    n = len(x)
    return sum(float(v[i] @ v[j]) * x[i] * x[j] for i in range(n) for j in range(i + 1, n))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_fm_identity_matches_the_double_sum(n, k, seed):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, k))
    x = rng.normal(size=n) * (rng.random(n) < 0.7)           # sparse-ish, any sign
    fast = fm_pairwise(torch.as_tensor(v * x[:, None])).item()
    assert fast == pytest.approx(double_sum(v, x), rel=1e-9, abs=1e-9)


def test_fm_pairwise_gradient_matches_the_hand_derivation():
    # d/dv_if of sum_{i<j} <v_i,v_j> x_i x_j = x_i sum_j v_jf x_j - v_if x_i^2 (Rendle 2010)
    rng = np.random.default_rng(0)
    v = torch.tensor(rng.normal(size=(7, 3)), requires_grad=True)
    x = torch.tensor(rng.normal(size=7))
    fm_pairwise(v * x[:, None]).backward()
    hand = x[:, None] * (v * x[:, None]).sum(0) - v * x[:, None] ** 2
    torch.testing.assert_close(v.grad, hand.detach())


@pytest.fixture(scope="module")
def featured():
    frame = planted_frame()
    users = pd.DataFrame({"user_id": frame["user_id"].unique()})
    users["group"] = ["even" if int(u[1:]) % 2 == 0 else "odd" for u in users["user_id"]]
    items = pd.DataFrame({"item_id": frame["item_id"].unique()})
    items["tags"] = ["a|b" if int(i[1:]) < 15 else "c" for i in items["item_id"]]
    items["weight"] = np.linspace(1.0, 2.0, len(items))
    return reclib.Interactions.from_dataframe(frame, user_features=users, item_features=items)


def literal_deep_part(module, layout, v, u, i):
    """DeepFM's MLP on [e_1; ...; e_F], with e_f = sum of v_j x_j over field f's slots."""
    index, value, slot_field = layout.pair_inputs(np.array([u]), np.array([i]))
    e = np.zeros((layout.n_fields, v.shape[1]))
    for j, x, f in zip(index[0], value[0], slot_field):
        e[f] += v[j] * x
    user_fields = np.unique(layout.user_slot_field)
    item_fields = np.unique(layout.item_slot_field)
    W_u, b_u = module.first_user.weight.detach().numpy(), module.first_user.bias.detach().numpy()
    W_i = module.first_item.weight.detach().numpy()
    hidden = W_u @ e[user_fields].ravel() + b_u + W_i @ e[item_fields].ravel()
    module.eval()
    with torch.no_grad():
        return module.deep(torch.as_tensor(hidden)[None]).item()


@pytest.mark.parametrize("deep", [False, True])
def test_module_matches_a_literal_fm_on_the_dense_vector(featured, deep):
    layout = build_layout(featured)
    model = FM(features="auto")
    model._prepare(featured)
    torch.manual_seed(0)
    module = FMModule(model._layout_buffers(), layout.n_features, layout.n_fields, 4,
                      deep_layers=(8,) if deep else ()).double()
    with torch.no_grad():
        module.linear.weight.normal_()
        module.bias.fill_(0.3)
    users = np.array([0, 3, 7])
    items = np.array([[1, 2], [5, 0], [29, 14]])
    got = module(torch.as_tensor(users), torch.as_tensor(items)).detach().numpy()
    w0 = module.bias.item()
    w = module.linear.weight.detach().numpy()[:, 0]
    v = module.factors.weight.detach().numpy()
    for b, u in enumerate(users):
        for c, i in enumerate(items[b]):
            index, value, _ = layout.pair_inputs(np.array([u]), np.array([i]))
            x = np.zeros(layout.n_features)
            np.add.at(x, index[0], value[0])
            expected = w0 + w @ x + double_sum(v, x)
            if deep:   # the MLP reads every field embedding, the item's fields included
                expected += literal_deep_part(module, layout, v, u, i)
            assert got[b, c] == pytest.approx(expected, rel=1e-9)
    all_scores = module.score_all(torch.as_tensor(users)).detach().numpy()
    np.testing.assert_allclose(all_scores[np.arange(3)[:, None], items], got, rtol=1e-10)
    every = torch.arange(module.inputs.n_items).expand(len(users), -1)   # all pairs, split form
    np.testing.assert_allclose(all_scores, module(torch.as_tensor(users), every).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_missing_feature_is_a_clear_error(featured):
    with pytest.raises(ValueError, match="DeepFM needs feature column 'genres'"):
        DeepFM(features=["genres"], n_epochs=1, device="cpu").fit(featured)
    plain = reclib.Interactions.from_dataframe(planted_frame())
    with pytest.raises(ValueError, match="FM needs feature column 'tags'.*no feature tables"):
        FM(features=["tags"], n_epochs=1, device="cpu").fit(plain)
    with pytest.raises(TypeError, match="features == 3"):
        FM(features=3, n_epochs=1, device="cpu").fit(plain)


def test_mistyped_feature_is_a_clear_error():
    frame = planted_frame()
    users = pd.DataFrame({"user_id": frame["user_id"].unique()})
    users["when"] = pd.Timestamp("2020-01-01")
    with pytest.raises(TypeError, match="column 'when' has dtype datetime64"):
        reclib.Interactions.from_dataframe(frame, user_features=users)


def test_unknown_ids_are_named(featured):
    model = FM(n_factors=4, n_epochs=2, device="cpu", random_state=0).fit(featured)
    with pytest.raises(ValueError, match="unknown user"):
        model.recommend(["nobody"])


@pytest.mark.parametrize("cls", [FM, DeepFM])
def test_quick_fit_uses_the_features(featured, cls, tmp_path):
    model = cls(n_factors=8, n_epochs=5, batch_size=64, lr=0.01, random_state=0,
                device="cpu").fit(featured)
    assert model.field_names_ == ["user", "item", "group", "tags", "weight"]
    assert model.loss_history_[-1] < model.loss_history_[0]
    loaded = reclib.models.Recommender.load(model.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.recommend(featured.user_ids, k=3)[1],
                               model.recommend(featured.user_ids, k=3)[1], rtol=1e-6)


def test_penalty_covers_factors_and_linear_weights(featured):
    # Rendle's FM regularises w_i as well as v_i; an unpenalised item term learns the noise in
    # item popularity and outranks the user-item interactions on the planted data
    model = FM(n_factors=3, n_epochs=1, device="cpu", random_state=0).fit(featured)
    module = model._build_module().double()
    with torch.no_grad():
        module.linear.weight.normal_()
        module.factors.weight.normal_()
    layout = build_layout(featured)
    weights = torch.cat([module.factors.weight, module.linear.weight], dim=1).detach().numpy()

    def side_sum(index, value, rows):                        # sum_i (v_i, w_i) x_i per row
        return (weights[index[rows]] * value[rows][..., None]).sum(-2)

    users, items = np.array([0, 3, 5]), np.array([[1, 2], [4, 0], [7, 7]])
    user = side_sum(layout.user_index, layout.user_value, users)
    item = side_sum(layout.item_index, layout.item_value, items)
    slow = (user ** 2).sum(-1).mean() + (item ** 2).sum(-1).mean()
    fast = module.penalty(torch.as_tensor(users), torch.as_tensor(items))
    assert fast.item() == pytest.approx(slow, rel=1e-9)
    fast.backward()
    assert module.linear.weight.grad.abs().sum() > 0


def test_planted_groups_are_recovered_with_the_contract_settings():
    data = reclib.Interactions.from_dataframe(planted_frame())
    model = FM(n_factors=8, n_epochs=40, batch_size=128, lr=0.03, reg=0.1, device="cpu",
               random_state=1).fit(data)
    items, _ = model.recommend(data.user_ids, k=3)
    own = [(int(i[1:]) < 15) == (int(u[1:]) % 2 == 0) for u, row in zip(data.user_ids, items)
           for i in row]
    assert np.mean(own) >= 0.8
