"""SASRec and GRU4Rec: masking, the two losses against slow references, sequence handling,
errors, and that both learn a planted next-item rule."""

import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from reclib import Interactions  # noqa: E402
from reclib.neural.gru4rec import GRU4Rec, GRU4RecModule  # noqa: E402
from reclib.neural.sasrec import (SASRec, SASRecModule, attention_mask,  # noqa: E402
                                  full_cross_entropy, one_negative_bce)

N_ITEMS = 12


def cyclic_frame(n_users=40, n_items=N_ITEMS, seed=0):
    """Each user walks the items in a cycle (i -> i + 1 mod n_items) from a random start."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(5, 10))
        for t in range(length):
            rows.append((f"u{u}", f"i{(start + t) % n_items:02d}", 1.0, 1000 + t))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def cyclic():
    return Interactions.from_dataframe(cyclic_frame())


def padded(rows, length, pad):
    out = torch.full((len(rows), length), pad, dtype=torch.long)
    for n, row in enumerate(rows):
        out[n, length - len(row):] = torch.tensor(row)
    return out


# ------------------------------------------------------------------ masking
def test_attention_mask_is_causal_and_skips_padding():
    padding = torch.tensor([[True, True, False, False, False]])
    allowed = attention_mask(padding)[0]
    for t in range(5):
        for j in range(5):
            assert bool(allowed[t, j]) == (j <= t and j >= 2)


def test_no_position_attends_to_the_future_or_to_padding():
    module = SASRecModule(N_ITEMS, 8, n_layers=2, n_heads=2, max_len=6, dropout=0.0,
                          init_std=0.5, init_generator=torch.Generator().manual_seed(0)).eval()
    seq = padded([[3, 1, 4, 1], [5, 9, 2, 6, 5, 3]], 6, N_ITEMS)
    hidden, weights = module.encode(seq, return_attention=True)
    for layer in weights:                                             # (B, H, L, L)
        future = torch.ones(6, 6, dtype=torch.bool).triu(1)
        assert torch.all(layer[:, :, future] == 0)
        assert torch.all(layer[0, :, :, :2] == 0)                     # padding columns
        real_rows = layer[0, :, 2:].sum(-1)
        torch.testing.assert_close(real_rows, torch.ones_like(real_rows))
    # changing a later item leaves every earlier hidden state exactly as it was
    changed = seq.clone()
    changed[1, 4] = 0
    torch.testing.assert_close(module.encode(changed)[1, :4], hidden[1, :4], rtol=0, atol=0)
    # nothing stored at padded positions reaches the items: scramble their position vectors
    with torch.no_grad():
        module.position.weight[:2] += 10.0
    torch.testing.assert_close(module.encode(seq)[0, 2:], hidden[0, 2:], rtol=0, atol=1e-6)


def test_gradients_of_a_state_vanish_for_future_inputs():
    module = SASRecModule(N_ITEMS, 8, 2, 1, 5, 0.0, 0.5,
                          init_generator=torch.Generator().manual_seed(1)).eval()
    seq = padded([[1, 2, 3, 4, 5]], 5, N_ITEMS)
    inputs = {}
    handle = module.item.register_forward_hook(
        lambda mod, args, out: inputs.setdefault("x", out.retain_grad() or out))
    hidden = module.encode(seq)
    handle.remove()
    # a LayerNorm output sums to a constant, so project on a fixed random direction
    (hidden[0, 2] @ torch.randn(8, generator=torch.Generator().manual_seed(2))).backward()
    grad = inputs["x"].grad[0].abs().sum(-1)                          # per input position
    assert torch.all(grad[3:] == 0) and torch.all(grad[:3] > 0)


def test_gru_padding_and_causality():
    module = GRU4RecModule(N_ITEMS, 6, 7, 1, 0.0, init_std=0.5,
                           init_generator=torch.Generator().manual_seed(0)).eval()
    short = padded([[3, 1, 4]], 3, N_ITEMS)
    long = padded([[3, 1, 4]], 7, N_ITEMS)                             # 4 padding slots
    torch.testing.assert_close(module.encode(long)[0, 4:], module.encode(short)[0], atol=1e-6,
                               rtol=0)
    assert torch.all(module.encode(long)[0, :4] == 0)
    changed = padded([[3, 1, 0]], 3, N_ITEMS)
    torch.testing.assert_close(module.encode(changed)[0, :2], module.encode(short)[0, :2])


# ------------------------------------------------------------------ losses
def test_full_cross_entropy_matches_a_slow_reference():
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 4, generator=gen, dtype=torch.float64)
    embeddings = torch.randn(N_ITEMS, 4, generator=gen, dtype=torch.float64)
    targets = torch.randint(N_ITEMS, (7,), generator=gen)
    total = 0.0
    for t in range(7):
        scores = [sum(float(hidden[t, f] * embeddings[i, f]) for f in range(4))
                  for i in range(N_ITEMS)]
        total -= scores[int(targets[t])] - math.log(sum(math.exp(s) for s in scores))
    value = full_cross_entropy(hidden, embeddings, targets)
    assert value.item() == pytest.approx(total / 7, rel=1e-12)


def test_one_negative_bce_matches_a_slow_reference():
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    embeddings = torch.randn(N_ITEMS, 3, generator=gen, dtype=torch.float64)
    targets, negatives = torch.tensor([0, 3, 5, 7, 11]), torch.tensor([1, 2, 6, 8, 10])

    def sigmoid(z):
        return 1.0 / (1.0 + math.exp(-z))
    total = 0.0
    for t in range(5):
        pos = float(hidden[t] @ embeddings[targets[t]])
        neg = float(hidden[t] @ embeddings[negatives[t]])
        total -= math.log(sigmoid(pos)) + math.log(1.0 - sigmoid(neg))
    value = one_negative_bce(hidden, embeddings, targets, negatives)
    assert value.item() == pytest.approx(total / 5, rel=1e-12)


def test_loss_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(2)
    hidden = torch.randn(4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    embeddings = torch.randn(N_ITEMS, 3, generator=gen, dtype=torch.float64,
                             requires_grad=True)
    targets = torch.tensor([1, 4, 4, 9])
    assert torch.autograd.gradcheck(lambda h, e: full_cross_entropy(h, e, targets),
                                    (hidden, embeddings))


# ------------------------------------------------------------------ the estimators
@pytest.mark.parametrize("model_cls", [SASRec, GRU4Rec])
def test_learns_the_planted_next_item(cyclic, model_cls):
    model = model_cls(n_factors=16, max_len=8, n_epochs=60, lr=1e-2, dropout=0.0,
                      batch_size=16, device="cpu", random_state=0).fit(cyclic)
    histories = [["i03", "i04", "i05"], ["i10", "i11"], ["i07"]]
    items, _ = model.recommend_histories(histories, k=1)
    assert list(items[:, 0]) == ["i06", "i00", "i08"]


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_recommend_uses_the_training_history(cyclic, loss):
    model = SASRec(n_factors=8, max_len=4, n_epochs=2, loss=loss, device="cpu").fit(cyclic)
    frame = cyclic.to_dataframe().sort_values("timestamp", kind="stable")
    history = frame.loc[frame["user_id"] == "u3", "item_id"].to_numpy()
    by_user = model.score_block(model.user_index(["u3"]), exclude_seen=False)
    np.testing.assert_allclose(by_user, model.score_histories([history]))
    items, _ = model.recommend(["u3"], k=3)
    assert not set(items[0]) & set(history)


def test_fits_are_reproducible_whatever_the_global_seed(cyclic, tmp_path):
    scores = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = SASRec(n_factors=8, max_len=4, n_epochs=2, device="cpu", random_state=5)
        scores.append(model.fit(cyclic).score_histories([["i01", "i02"]]))
    np.testing.assert_array_equal(scores[0], scores[1])
    loaded = SASRec.load(model.save(tmp_path / "sasrec"))
    np.testing.assert_allclose(loaded.score_histories([["i01", "i02"]]), scores[1])


def test_attention_weights_of_a_user(cyclic):
    model = SASRec(n_factors=8, n_heads=2, max_len=6, n_epochs=1, device="cpu").fit(cyclic)
    items, layers = model.attention_weights("u0")
    n = len(items)
    assert len(layers) == 2 and layers[0].shape == (2, n, n)
    np.testing.assert_allclose(layers[0].sum(-1), 1.0, rtol=1e-9)
    assert np.all(np.triu(layers[1][0], 1) == 0)


# ------------------------------------------------------------------ errors
def test_clear_errors(cyclic):
    model = SASRec(n_factors=8, max_len=4, n_epochs=1, device="cpu").fit(cyclic)
    with pytest.raises(ValueError, match=r"histories\[1\] is empty"):
        model.score_histories([["i01"], []])
    with pytest.raises(ValueError, match=r"histories\[0\]\[1\] == 'nope' is an item unknown"):
        model.recommend_histories([["i01", "nope"]])
    with pytest.raises(TypeError, match="histories must be a list"):
        model.score_histories("i01")
    one_each = Interactions.from_dataframe(cyclic_frame().groupby("user_id").head(1))
    with pytest.raises(ValueError, match="one-item sequence"):
        SASRec(n_epochs=1, device="cpu").fit(one_each)
    no_time = Interactions.from_dataframe(cyclic_frame().drop(columns="timestamp"))
    with pytest.raises(ValueError, match="needs timestamps"):
        GRU4Rec(n_epochs=1, device="cpu").fit(no_time)
    with pytest.raises(ValueError, match="loss == 'bpr'"):
        SASRec(loss="bpr").fit(cyclic)
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        SASRec(n_factors=10, n_heads=3).fit(cyclic)
    with pytest.raises(ValueError, match="sequence models take neither"):
        SASRec(validation_fraction=0.1, patience=2).fit(cyclic)
    with pytest.raises(ValueError, match="max_len == 0"):
        GRU4Rec(max_len=0).fit(cyclic)


# ------------------------------------------------------------------ item table from text
def test_principal_init_is_pca_scaled_to_init_std():
    from reclib.neural.sasrec import principal_init
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 6)) @ np.diag([5, 4, 3, 0.1, 0.1, 0.1])
    start = principal_init(vectors, 3, 0.02)
    assert start.shape == (50, 3)
    np.testing.assert_allclose(start.mean(0), 0, atol=1e-12)
    assert start.std() == pytest.approx(0.02)
    centred = vectors - vectors.mean(0)       # slow reference: eigenvectors of the covariance
    values, vecs = np.linalg.eigh(centred.T @ centred)
    top = vecs[:, np.argsort(values)[::-1][:3]]
    reference = centred @ top
    reference *= 0.02 / reference.std()
    np.testing.assert_allclose(np.abs(start), np.abs(reference), rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="at least n_factors == 8"):
        principal_init(vectors, 8, 0.02)


def test_item_table_starts_from_the_embeddings(cyclic):
    from reclib.neural.sasrec import principal_init
    from reclib.text import embedding_table
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(cyclic.n_items, 10))
    data = cyclic.with_features(item_features=embedding_table(cyclic.item_ids, vectors))
    model = SASRec(n_factors=8, max_len=4, n_epochs=1, lr=1e-12, item_init="embeddings",
                   device="cpu").fit(data)
    table = model.weights_["item.weight"]
    np.testing.assert_allclose(table[:-1], principal_init(vectors, 8, 0.02), atol=1e-6)
    assert not table[-1].any()                                     # padding row stays zero
    random = SASRec(n_factors=8, max_len=4, n_epochs=1, lr=1e-12, device="cpu").fit(data)
    assert not np.allclose(random.weights_["item.weight"][:-1], table[:-1], atol=1e-3)
    with pytest.raises(ValueError, match=r"SASRec\(item_init='embeddings'\) needs item"):
        SASRec(n_epochs=1, item_init="embeddings", device="cpu").fit(cyclic)
    with pytest.raises(ValueError, match="item_init"):
        SASRec(item_init="text").fit(cyclic)
    GRU4Rec(n_factors=8, max_len=4, n_epochs=1, item_init="embeddings", device="cpu").fit(data)
