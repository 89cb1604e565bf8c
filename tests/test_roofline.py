"""The roofline arithmetic: bytes per interaction by hand, the bound, the bandwidth probe."""

import math

import pytest

torch = pytest.importorskip("torch")

from reclib.roofline import (bytes_per_interaction, ials_sweep_bytes,  # noqa: E402
                             measure_bandwidth, roofline_fraction)


def test_hand_count_f64_fp32():
    # user, positive and negative rows: 3 x 64 fp32 = 768 bytes read, 768 written;
    # two item biases: 8 bytes read, 8 written
    rows = 3 * 64 * 4
    biases = 2 * 4
    sgd = 2 * rows + 2 * biases
    assert sgd == 1552
    assert bytes_per_interaction(64) == sgd
    assert bytes_per_interaction(64, "sgd", dtype_bytes=4, item_bias=True, n_negatives=1) == sgd
    # Adam: first and second moment of every element touched, each read and written
    adam = sgd + 2 * 2 * (rows + biases)
    assert adam == 4656
    assert bytes_per_interaction(64, "adam") == adam
    assert bytes_per_interaction(64, "sparse_adam") == adam
    # row-wise Adagrad: one accumulator for each of the 3 factor rows and 2 bias rows
    assert bytes_per_interaction(64, "rowwise_adagrad") == sgd + 2 * 5 * 4 == 1592
    # no bias: just the three rows
    assert bytes_per_interaction(64, item_bias=False) == 1536
    # three negatives: 5 rows and 4 biases
    assert bytes_per_interaction(64, n_negatives=3) == 2 * 4 * (5 * 64 + 4)
    # bf16 weights with fp32 state
    assert bytes_per_interaction(64, "adam", dtype_bytes=2, state_bytes=4) == \
        2 * 2 * 194 + 2 * 4 * 2 * 194


def test_state_counts_match_the_optimisers_state():
    """The numbers of state per row assumed above are what the optimisers really keep."""
    from reclib.neural._train import RowWiseAdagrad

    n, f = 11, 5
    table = torch.nn.Embedding(n, f, sparse=True)
    rows = torch.tensor([2, 7, 9])
    for opt, per_row in ((torch.optim.SparseAdam(table.parameters(), lr=0.1), 2 * f),
                         (RowWiseAdagrad(table.parameters(), lr=0.1), 1)):
        before = table.weight.detach().clone()
        opt.zero_grad()
        table(rows).sum().backward()
        opt.step()
        state = opt.state[table.weight]
        numbers = sum(v.numel() for v in state.values() if torch.is_tensor(v) and v.dim() > 0)
        assert numbers == n * per_row
        # only the touched rows changed: the count per interaction is of those rows only
        changed = (table.weight.detach() != before).any(dim=1).nonzero().flatten()
        assert changed.tolist() == rows.tolist()
    bpi = {"sparse_adam": bytes_per_interaction(f, "sparse_adam", item_bias=False),
           "rowwise_adagrad": bytes_per_interaction(f, "rowwise_adagrad", item_bias=False)}
    assert bpi["sparse_adam"] == 2 * 4 * 3 * f + 2 * 4 * 3 * 2 * f
    assert bpi["rowwise_adagrad"] == 2 * 4 * 3 * f + 2 * 4 * 3


def test_fraction():
    assert roofline_fraction(1e6, 1552, 1.552e9) == pytest.approx(1.0)
    assert roofline_fraction(2.5e5, 1000, 1e9) == pytest.approx(0.25)
    for bad in (dict(interactions_per_s=0.0), dict(bytes_per_interaction=-1.0),
                dict(bandwidth=math.nan)):
        args = dict(interactions_per_s=1.0, bytes_per_interaction=1.0, bandwidth=1.0) | bad
        with pytest.raises(ValueError, match=next(iter(bad))):
            roofline_fraction(**args)


@pytest.mark.parametrize("bad, match", [
    (dict(n_factors=0), "n_factors"), (dict(optimizer="adagrad"), "optimizer"),
    (dict(dtype_bytes=0), "dtype_bytes"), (dict(item_bias=1), "item_bias"),
    (dict(n_negatives=0), "n_negatives"), (dict(n_factors=64.0), "n_factors"),
    (dict(state_bytes=0), "state_bytes")])
def test_bad_input(bad, match):
    args = dict(n_factors=8) | bad
    with pytest.raises((ValueError, TypeError), match=match):
        bytes_per_interaction(**args)


def test_ials_sweep_hand_count():
    # f = 2, 3 users, 2 items, 4 nonzeros, 1 CG step (2 passes over the nonzeros per half)
    f, s = 2, 1
    users = (2 * f                  # the Gram matrix of the 2 item rows
             + 2 * 4 * f            # 2 passes: each nonzero's item row
             + 2 * 3 * 3 * f        # 2 passes: each user's vector read, accumulation out and in
             + 3 * 3 * f            # start: x read, r and p written
             + s * 3 * 6 * f)       # each step: x, r, p read and written
    items = (3 * f + 2 * 4 * f + 2 * 2 * 3 * f + 2 * 3 * f + s * 2 * 6 * f)
    assert (users, items) == (110, 82)
    assert ials_sweep_bytes(f, 3, 2, 4, cg_steps=s) == 4 * (users + items) == 768
    assert ials_sweep_bytes(f, 3, 2, 4, cg_steps=s, dtype_bytes=8) == 2 * 768
    # the docstring's example: f = 64, fp32, 3 steps, 900k nonzeros, 50k users, 20k items
    b = ials_sweep_bytes(64, 50_000, 20_000, 900_000)
    assert b == 4 * 64 * (2 * 4 * 900_000 + 34 * 70_000)
    assert round(b / 900_000) == 2725
    # one more CG step: one more pass over every nonzero and 9 f more per row, each half
    extra = ials_sweep_bytes(64, 50_000, 20_000, 900_000, cg_steps=4) - b
    assert extra == 4 * 64 * (2 * 900_000 + 9 * 70_000)


@pytest.mark.parametrize("bad, match", [
    (dict(n_factors=0), "n_factors"), (dict(n_users=0), "n_users"), (dict(n_items=0), "n_items"),
    (dict(n_interactions=0), "n_interactions"), (dict(cg_steps=0), "cg_steps"),
    (dict(dtype_bytes=0), "dtype_bytes"), (dict(n_users=2.0), "n_users")])
def test_ials_sweep_bad_input(bad, match):
    args = dict(n_factors=8, n_users=5, n_items=4, n_interactions=9) | bad
    with pytest.raises((ValueError, TypeError), match=match):
        ials_sweep_bytes(**args)


def test_measure_bandwidth_cpu():
    bw = measure_bandwidth("cpu", n_bytes=2**22, repeats=3)
    assert math.isfinite(bw) and 1e8 < bw < 1e13    # between 0.1 GB/s and 10 TB/s
    copy = measure_bandwidth("cpu", n_bytes=2**22, repeats=3, kernel="copy", n_threads=1)
    assert copy > 0
    assert torch.get_num_threads() >= 1


def test_measure_bandwidth_errors():
    with pytest.raises(ValueError, match="kernel"):
        measure_bandwidth(kernel="scale")
    with pytest.raises(ValueError, match="n_bytes"):
        measure_bandwidth(n_bytes=10)
    with pytest.raises(ValueError, match="device"):
        measure_bandwidth("meta", n_bytes=2**12)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            measure_bandwidth("cuda", n_bytes=2**12)
