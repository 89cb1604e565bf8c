r"""Losses for learning to rank from implicit feedback.

Every loss takes *scores* (logits) :math:`\hat y_{ui}` of positives and of sampled negatives
and returns the mean over the batch, so gradients do not depend on the batch size.

References
----------
S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian personalized
ranking from implicit feedback", UAI 2009.
X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua, "Neural collaborative filtering",
WWW 2017 (binary cross-entropy with sampled negatives).
X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei, E. Chi,
"Sampling-bias-corrected neural modeling for large corpus item recommendations",
RecSys 2019 (the log-Q correction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _as_2d(negatives: torch.Tensor, n: int) -> torch.Tensor:
    if negatives.dim() == 1:
        negatives = negatives[:, None]
    if negatives.dim() != 2 or negatives.shape[0] != n:
        raise ValueError(f"negative scores must have shape ({n},) or ({n}, n_negatives), "
                         f"got {tuple(negatives.shape)}")
    return negatives


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    r"""Bayesian personalised ranking: the positive should outscore each sampled negative.

    .. math::

        L = -\frac{1}{B\,m} \sum_{b=1}^{B} \sum_{j=1}^{m}
            \log \sigma\big(\hat y_{u_b i_b} - \hat y_{u_b j}\big),
        \qquad \frac{\partial L}{\partial \hat y_{ui}} =
            -\frac{1}{Bm}\sum_j \sigma\big(\hat y_{uj} - \hat y_{ui}\big).

    Parameters
    ----------
    positive : tensor of shape (B,)
    negative : tensor of shape (B,) or (B, m)
    """
    negative = _as_2d(negative, positive.shape[0])
    return -F.logsigmoid(positive[:, None] - negative).mean()  # (B, m) -> scalar


def bce_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    r"""Binary cross-entropy with sampled negatives (He et al., 2017).

    Observed pairs are labelled 1 and :math:`m` sampled pairs per positive 0:

    .. math::

        L = -\frac{1}{B(1+m)} \sum_{b=1}^{B} \Big[\log \sigma(\hat y_{u_b i_b})
            + \sum_{j=1}^{m} \log\big(1 - \sigma(\hat y_{u_b j})\big)\Big],

    with :math:`\log(1 - \sigma(x)) = \log \sigma(-x)` for numerical stability.
    """
    negative = _as_2d(negative, positive.shape[0])
    total = -F.logsigmoid(positive).sum() - F.logsigmoid(-negative).sum()
    return total / (negative.shape[0] * (1 + negative.shape[1]))


def sampled_softmax_loss(positive: torch.Tensor, negative: torch.Tensor,
                         log_q_positive: torch.Tensor | None = None,
                         log_q_negative: torch.Tensor | None = None,
                         temperature: float = 1.0) -> torch.Tensor:
    r"""Softmax over the positive and sampled negatives, with the log-Q correction.

    A full softmax over all items costs :math:`O(|I|)` per example. Sampling :math:`m`
    negatives from a proposal :math:`Q` and scoring only those is cheap but biased towards
    the items :math:`Q` favours. Subtracting :math:`\log Q(j)` from each logit removes that bias
    (Yi et al., 2019):

    .. math::

        s^c_{uj} = \hat y_{uj} / \tau - \log Q(j), \qquad
        L = -\frac{1}{B} \sum_{b} \log
            \frac{e^{s^c_{u_b i_b}}}{e^{s^c_{u_b i_b}} + \sum_{j=1}^{m} e^{s^c_{u_b j}}}.

    Parameters
    ----------
    positive : tensor of shape (B,)
    negative : tensor of shape (B, m) or (B,)
        Scores of the sampled negatives for each example (shared negatives: expand them).
    log_q_positive : tensor of shape (B,), optional
        :math:`\log Q` of each positive item; ``None`` (with ``log_q_negative``) for a uniform
        proposal, where the correction is a constant and cancels.
    log_q_negative : tensor of shape (m,) or (B, m), optional
    temperature : float
        :math:`\tau > 0`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature == {temperature}, must be > 0")
    negative = _as_2d(negative, positive.shape[0])
    if (log_q_positive is None) != (log_q_negative is None):
        raise ValueError("pass both log_q_positive and log_q_negative, or neither")
    pos = positive / temperature                          # (B,)
    neg = negative / temperature                          # (B, m)
    if log_q_positive is not None:
        pos = pos - log_q_positive
        neg = neg - log_q_negative                        # broadcasts (m,) over the batch
    logits = torch.cat([pos[:, None], neg], dim=1)        # (B, 1 + m); the target is column 0
    return -(pos - torch.logsumexp(logits, dim=1)).mean()


def in_batch_softmax_loss(scores: torch.Tensor, log_q: torch.Tensor | None = None,
                          exclude: torch.Tensor | None = None,
                          temperature: float = 1.0) -> torch.Tensor:
    r""":func:`sampled_softmax_loss` with the batch's other positives as the negatives.

    ``scores`` is the ``(B, B)`` matrix :math:`\hat y_{u_a i_b}`: row :math:`a`'s positive is
    on the diagonal and the other columns are its negatives. With the corrected logits
    :math:`s_{ab} = \hat y_{u_a i_b} / \tau - \log Q(i_b)` and :math:`E` the excluded
    off-diagonal entries (``exclude``, e.g. a column holding the row's own item again),

    .. math:: L = -\frac{1}{B} \sum_a \Big(s_{aa} - \log \sum_{b \notin E_a} e^{s_{ab}}\Big),

    the value :func:`sampled_softmax_loss` gives for the diagonal as positives and the rest of
    each row as negatives, computed as one cross-entropy over the rows, without copying the
    positives into a separate column.

    Parameters
    ----------
    scores : tensor of shape (B, B)
    log_q : tensor of shape (B,), optional
        :math:`\log Q` of each column's item; ``None`` for no correction.
    exclude : bool tensor of shape (B, B), optional
        Entries that are not negatives. Its diagonal must be False: an excluded positive
        makes the loss infinite (the trainer then stops with an error naming the batch).
    temperature : float
        :math:`\tau > 0`.
    """
    if temperature <= 0:
        raise ValueError(f"temperature == {temperature}, must be > 0")
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix, got {tuple(scores.shape)}")
    logits = scores / temperature
    if log_q is not None:
        logits = logits - log_q[None, :]
    if exclude is not None:   # not checked here: that would wait for the device every step
        logits = logits.masked_fill(exclude, -torch.inf)
    target = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, target)


LOSSES = {"bpr": bpr_loss, "bce": bce_loss, "softmax": sampled_softmax_loss}


def gathered_squared_norm(weight: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    r"""``weight[index].pow(2).sum()``, the L2 penalty of a batch's rows, without a copy per
    occurrence.

    With :math:`n_r` the number of times row :math:`r` occurs in ``index``,

    .. math:: \sum_k \lVert w_{r_k} \rVert^2 = \sum_r n_r \lVert w_r \rVert^2,

    a sum over the distinct rows only, and the gradient of row :math:`r` is
    :math:`2 n_r w_r`, as for the gathered form. A batch of 4096 pairs with one negative names
    8192 item rows but, on a catalogue of a few thousand items, far fewer distinct ones.
    """
    rows, counts = torch.unique(index.reshape(-1), return_counts=True)
    return counts.to(weight.dtype) @ weight.index_select(0, rows).pow(2).sum(1)
