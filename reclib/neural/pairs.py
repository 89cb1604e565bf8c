r"""Scores of a batch of (user, item) pairs from two embedding tables, with a cheap backward pass.

LightGCN and the factorisation machine score a batch as dot products
:math:`e_{u_b}^\top e_{i_{bc}}` of rows gathered from a user table and an item table. Autograd
through the gathered rows builds a ``(B, c, f)`` gradient and scatters it back into the tables;
:func:`pair_scores` instead writes the table gradients as two sparse products.
"""

from __future__ import annotations

import torch


class _PairScores(torch.autograd.Function):
    """The autograd function behind :func:`pair_scores`."""

    @staticmethod
    def forward(ctx, user_emb, item_emb, users, items):
        u = user_emb.index_select(0, users)                                # (B, f)
        v = item_emb.index_select(0, items.reshape(-1)).view(*items.shape, -1)   # (B, c, f)
        ctx.save_for_backward(user_emb, item_emb, users, items)
        return torch.bmm(v, u.unsqueeze(-1)).squeeze(-1)                   # (B, c)

    @staticmethod
    def backward(ctx, grad):
        user_emb, item_emb, users, items = ctx.saved_tensors
        pairs = torch.stack([users.repeat_interleave(items.shape[1]), items.reshape(-1)])
        G = torch.sparse_coo_tensor(pairs, grad.reshape(-1).to(user_emb.dtype),
                                    (len(user_emb), len(item_emb)), check_invariants=False)
        grad_users = torch.sparse.mm(G, item_emb) if ctx.needs_input_grad[0] else None
        grad_items = torch.sparse.mm(G.t(), user_emb) if ctx.needs_input_grad[1] else None
        return grad_users, grad_items, None, None


def pair_scores(user_emb: torch.Tensor, item_emb: torch.Tensor, users: torch.Tensor,
                items: torch.Tensor) -> torch.Tensor:
    r"""Scores :math:`s_{bc} = e_{u_b}^\top e_{i_{bc}}` of a batch, ``(B, c)``, differentiable in
    both embedding tables.

    With :math:`G` the sparse users x items matrix holding :math:`\partial J / \partial s_{bc}`
    at :math:`(u_b, i_{bc})` (repeats add up), the gradients are
    :math:`\partial J / \partial E_U = G E_I` and :math:`\partial J / \partial E_I = G^\top E_U`:
    two sparse products with :math:`Bc` non-zeros. Autograd through the gathered rows would
    instead build a ``(B, c, f)`` gradient and scatter it back, several times slower on the CPU.
    ``users`` is ``(B,)``, ``items`` ``(B, c)``; both are integer index tensors.
    """
    return _PairScores.apply(user_emb, item_emb, users, items)
