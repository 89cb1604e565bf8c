"""The losses against autograd, finite differences and slow references."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reclib.neural.losses import (bce_loss, bpr_loss, gathered_squared_norm,  # noqa: E402
                                  in_batch_softmax_loss,
                                  sampled_softmax_loss)


@pytest.fixture
def scores():
    gen = torch.Generator().manual_seed(0)
    pos = torch.randn(6, generator=gen, dtype=torch.float64)
    neg = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    return pos, neg


def test_bpr_gradient_matches_the_hand_derived_one(scores):
    pos, neg = (s.clone().requires_grad_() for s in scores)
    bpr_loss(pos, neg).backward()
    sigma = torch.sigmoid(neg.detach() - pos.detach()[:, None])          # sigma(y_j - y_i)
    expected = -sigma.sum(1) / neg.numel()
    torch.testing.assert_close(pos.grad, expected)
    torch.testing.assert_close(neg.grad, sigma / neg.numel())


def test_bpr_accepts_one_negative_per_positive(scores):
    pos, neg = scores
    assert torch.isclose(bpr_loss(pos, neg[:, 0]), -torch.log(torch.sigmoid(pos - neg[:, 0])).mean())


def test_bce_equals_the_textbook_formula(scores):
    pos, neg = scores
    p, q = torch.sigmoid(pos), torch.sigmoid(neg)
    expected = -(torch.log(p).sum() + torch.log(1 - q).sum()) / (pos.numel() + neg.numel())
    torch.testing.assert_close(bce_loss(pos, neg), expected)


def test_losses_pass_gradcheck(scores):
    pos, neg = (s.clone().requires_grad_() for s in scores)
    log_q_pos = torch.log(torch.rand(6, dtype=torch.float64))
    log_q_neg = torch.log(torch.rand(3, dtype=torch.float64))
    assert torch.autograd.gradcheck(bpr_loss, (pos, neg))
    assert torch.autograd.gradcheck(bce_loss, (pos, neg))
    assert torch.autograd.gradcheck(
        lambda a, b: sampled_softmax_loss(a, b, log_q_pos, log_q_neg, temperature=0.5), (pos, neg))


def slow_corrected_softmax(pos, neg, log_q_pos, log_q_neg, temperature):
    """One example at a time, straight from the formula with explicit exponentials."""
    total = 0.0
    for b in range(len(pos)):
        target = np.exp(pos[b] / temperature - log_q_pos[b])
        others = sum(np.exp(neg[b, j] / temperature - log_q_neg[j]) for j in range(neg.shape[1]))
        total += -np.log(target / (target + others))
    return total / len(pos)


def test_log_q_corrected_softmax_matches_a_slow_reference(scores):
    pos, neg = scores
    rng = np.random.default_rng(1)
    log_q_pos, log_q_neg = np.log(rng.random(6)), np.log(rng.random(3))
    got = sampled_softmax_loss(pos, neg, torch.from_numpy(log_q_pos), torch.from_numpy(log_q_neg),
                               temperature=0.7)
    expected = slow_corrected_softmax(pos.numpy(), neg.numpy(), log_q_pos, log_q_neg, 0.7)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_uniform_correction_cancels(scores):
    pos, neg = scores
    const = torch.full((6,), -np.log(50.0), dtype=torch.float64)
    corrected = sampled_softmax_loss(pos, neg, const, const[:3])
    torch.testing.assert_close(corrected, sampled_softmax_loss(pos, neg))


def test_log_q_correction_removes_the_sampling_bias():
    """Negatives drawn from a skewed Q: subtracting log(m Q(j)) turns the sampled sum into an
    importance-sampling estimate of the sum over all items, so the loss tracks the full
    softmax; without the correction it is far off."""
    rng = np.random.default_rng(0)
    n_items, m, n = 30, 200, 2000
    logits = torch.from_numpy(rng.normal(size=n_items))
    q = rng.random(n_items) ** 3 + 1e-3
    q /= q.sum()
    # the positive appears once more in the denominator, as in the sampled loss
    full = -(logits[0] - torch.log(logits[0].exp() + logits.exp().sum())).item()
    draws = torch.from_numpy(rng.choice(n_items, size=(n, m), p=q))
    pos, neg = logits[0].expand(n), logits[draws]
    log_q = torch.from_numpy(np.log(m * q))
    corrected = sampled_softmax_loss(pos, neg, torch.zeros(n, dtype=torch.float64),
                                     log_q[draws]).item()
    naive = sampled_softmax_loss(pos, neg).item()
    assert abs(corrected - full) < 0.1       # what is left is the small bias of log E[.]
    assert abs(naive - full) > 5 * abs(corrected - full)


def test_bad_shapes_and_arguments_are_named(scores):
    pos, neg = scores
    with pytest.raises(ValueError, match="negative scores must have shape"):
        bpr_loss(pos, neg[:3])
    with pytest.raises(ValueError, match="temperature == 0"):
        sampled_softmax_loss(pos, neg, temperature=0)
    with pytest.raises(ValueError, match="both log_q"):
        sampled_softmax_loss(pos, neg, log_q_positive=pos)


def test_gathered_squared_norm_equals_the_gathered_sum_and_its_gradient():
    """Counting repeated rows once each gives the value and the gradient of the plain gather."""
    rng = np.random.default_rng(3)
    weight = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    index = torch.as_tensor(rng.integers(0, 7, size=(10, 3)))      # many repeats, row 6 maybe none
    fast = gathered_squared_norm(weight, index)
    (fast_grad,) = torch.autograd.grad(fast, weight)
    slow = weight[index].pow(2).sum()
    (slow_grad,) = torch.autograd.grad(slow, weight)
    assert torch.allclose(fast, slow, rtol=1e-14, atol=0)
    assert torch.allclose(fast_grad, slow_grad, rtol=1e-14, atol=0)
    counts = np.bincount(index.numpy().ravel(), minlength=7)
    expected = 2 * counts[:, None] * weight.detach().numpy()
    np.testing.assert_allclose(fast_grad.numpy(), expected, rtol=1e-14)
    assert torch.autograd.gradcheck(lambda w: gathered_squared_norm(w, index), (weight,))


def test_in_batch_softmax_equals_the_sampled_softmax_with_the_other_columns_as_negatives():
    """One cross-entropy over the (B, B) rows against the positive-column formulation, with
    the log-Q correction and excluded duplicates, in value and gradient."""
    gen = torch.Generator().manual_seed(4)
    B = 6
    scores = torch.randn(B, B, dtype=torch.float64, generator=gen, requires_grad=True)
    log_q = torch.log(torch.rand(B, dtype=torch.float64, generator=gen))
    items = torch.tensor([0, 1, 0, 2, 3, 1])                      # repeats: excluded columns
    exclude = items[:, None] == items[None, :]
    exclude.fill_diagonal_(False)
    for q in (None, log_q):
        fast = in_batch_softmax_loss(scores, q, exclude, temperature=0.3)
        negative = scores.masked_fill(exclude | torch.eye(B, dtype=torch.bool), -torch.inf)
        slow = (sampled_softmax_loss(scores.diagonal(), negative, temperature=0.3) if q is None
                else sampled_softmax_loss(scores.diagonal(), negative, q,
                                          q[None, :].expand(B, B), temperature=0.3))
        torch.testing.assert_close(fast, slow, rtol=1e-13, atol=0)
        torch.testing.assert_close(torch.autograd.grad(fast, scores)[0],
                                   torch.autograd.grad(slow, scores)[0], rtol=1e-12, atol=1e-14)
    assert torch.autograd.gradcheck(lambda s: in_batch_softmax_loss(s, log_q, exclude, 0.3),
                                    (scores,))
    with pytest.raises(ValueError, match="square"):
        in_batch_softmax_loss(scores[:, :3])
    with pytest.raises(ValueError, match="temperature"):
        in_batch_softmax_loss(scores, temperature=0.0)
