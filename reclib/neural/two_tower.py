r"""The two-tower retrieval model with in-batch negatives and the log-Q correction.

A user tower :math:`u(\cdot)` and an item tower :math:`v(\cdot)` map each side's ids and side
features to vectors; the score is their scaled cosine,
:math:`s(u, i) = \langle u, v_i \rangle / \tau` with :math:`\|u\| = \|v_i\| = 1`. Each tower
sums the embeddings of each field (:mod:`reclib.features`), concatenates the fields and runs
an MLP. Because the score is a dot product, the item vectors can be computed once and
indexed for nearest-neighbour search: serving a user costs one pass through the user tower
and one search, which is why retrieval stages are built this way (Covington et al., 2016).

Training treats the other positives of a batch as the negatives of each example (no
sampler: they are free). They are drawn in proportion to popularity, so without correction
popular items are pushed down too often; subtracting :math:`\log Q(j)`, the log of the
per-draw probability :math:`Q(j) = n_j / N` that a batch column is item :math:`j` (its share
of the training interactions), from each logit removes that bias (Yi et al., 2019):

.. math::

    L = -\frac{1}{B} \sum_{b=1}^{B} \log
        \frac{e^{s(u_b, i_b) - \log Q(i_b)}}{\sum_{c=1}^{B} e^{s(u_b, i_c) - \log Q(i_c)}},

where a column :math:`c \ne b` holding the same item as :math:`b` is left out (it is not a
negative). :math:`Q(j) = n_j / N`, the item's share of the training interactions.

With ``history=True`` the user tower reads a history field in place of the user-id field:
the mean of the item-id embeddings :math:`e_j` (the rows of the shared table that the item
tower uses for the item-id field) over the user's training items :math:`\mathcal I_u`, as
FISM represents a user by the items they have (Kabbur et al., 2013); the user's side-feature
fields stay:

.. math::

    h_u = \frac{1}{|\mathcal I_u|} \sum_{j \in \mathcal I_u} e_j, \qquad
    h_{u \setminus i} = \frac{1}{|\mathcal I_u| - 1} \sum_{j \in \mathcal I_u, j \ne i} e_j .

A training example :math:`(u, i)` uses the leave-one-out mean :math:`h_{u \setminus i}` (the
zero vector when :math:`|\mathcal I_u| = 1`), so the tower cannot score the positive by copying
its own embedding into the user vector; scoring uses :math:`h_u`. The user-id field has to go:
a free per-user embedding memorises the user's whole training set, and next to
:math:`h_{u \setminus i}` (that set minus the target) it lets the tower find the one missing
item, so the training loss collapses while held-out accuracy falls below popularity. Without
it the user vector is a function of history and side features only, like the watch-history
tower of Covington et al. (2016): a serving process recomputes it after new events, for known
and new users alike (:meth:`TwoTower.encode_users`,
:class:`reclib.serving.encoders.HistoryTowerEncoder`).

A history model also leaves out of row :math:`b`'s denominator every column whose item is
among :math:`u_b`'s training items, not only duplicates of :math:`i_b`. Those items are the
user's positives, and they are exactly the items of the history field: counted as negatives,
they would teach the tower that whatever is in a user's history scores low, so that at
scoring time (the full history as input) it would rank the user's own kind of item down.

References
----------
P. Covington, J. Adams, E. Sargin, "Deep neural networks for YouTube recommendations",
RecSys 2016.
X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei, E. Chi,
"Sampling-bias-corrected neural modeling for large corpus item recommendations", RecSys 2019.
S. Kabbur, X. Ning, G. Karypis, "FISM: factored item similarity models for top-N recommender
systems", KDD 2013.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_float, check_int
from ._train import limited_threads
from .fm import FeatureInputs, FieldInputs
from .losses import in_batch_softmax_loss


def _mlp(width_in: int, layers, out: int) -> nn.Module:
    parts, width = [], width_in
    for w in layers:
        parts += [nn.Linear(width, w), nn.ReLU()]
        width = w
    parts.append(nn.Linear(width, out))
    return nn.Sequential(*parts)


class TwoTowerModule(nn.Module):
    """Two towers over the field layout; ``forward`` scores pairs, ``score_all`` all items.

    With ``history = (indptr, items)`` (CSR of each user's item indices) the user tower reads
    the mean of the item-id embeddings over the user's items in place of the user-id field
    (its side-feature fields stay).
    """

    def __init__(self, buffers: dict, n_features: int, n_factors: int, layers, out: int,
                 temperature: float, std: float = 0.05, history=None):
        super().__init__()
        self.inputs = FieldInputs(buffers, n_features)
        # one table serves both towers: user-side and item-side ids never overlap
        self.embedding = nn.Parameter(torch.randn(n_features, n_factors) * std)
        # a history model swaps the user-id field for the history field: same width
        self.user_tower = _mlp(self.inputs.n_user_fields * n_factors, layers, out)
        self.item_tower = _mlp(self.inputs.n_item_fields * n_factors, layers, out)
        self.temperature = temperature
        self.history = history is not None
        if self.history:
            # item j's id feature row: its slot of the item-id field (field 1 of the layout)
            self.register_buffer("item_rows", buffers["item_feature_index"][:, 0].long(),
                                 persistent=False)
            self.set_history(*history)

    def set_history(self, indptr, items) -> None:
        """Use the CSR ``(indptr, items)`` as the users' histories (kept out of the state_dict)."""
        device = self.item_rows.device
        indptr, items = np.asarray(indptr, dtype=np.int64), np.asarray(items, dtype=np.int64)
        # (user, item) pairs as sorted keys u * n_items + j, for membership tests
        keys = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr)) * len(self.item_rows) + items
        for name, a in (("history_indptr", indptr), ("history_items", items),
                        ("history_keys", keys)):
            self.register_buffer(name, torch.as_tensor(a, device=device), persistent=False)

    def holds(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """``(len(users), len(items))`` bool: item ``c`` is among user ``b``'s history items."""
        keys = self.history_keys
        if len(keys) == 0:
            return torch.zeros(len(users), len(items), dtype=torch.bool, device=keys.device)
        query = users[:, None] * len(self.item_rows) + items[None, :]
        found = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
        return keys[found] == query

    def bag_sums(self, flat_items: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Sums of item-id embeddings over consecutive bags of ``flat_items``: (len(counts), d)."""
        offsets = torch.cumsum(counts, 0) - counts
        return F.embedding_bag(self.item_rows[flat_items], self.embedding, offsets, mode="sum")

    def history_input(self, users: torch.Tensor | None = None,
                      leave_out: torch.Tensor | None = None) -> torch.Tensor:
        r"""The history field :math:`h_u` of ``users`` (every user when None): (n, d).

        With ``leave_out`` (each row's positive item) it is :math:`h_{u \setminus i}`, the mean
        over the user's other items, and zero for a user with one item.
        """
        indptr = self.history_indptr
        if users is None:
            uniq = torch.arange(len(indptr) - 1, device=indptr.device)
            inverse = uniq
        else:
            uniq, inverse = torch.unique(users, return_inverse=True)
        start, counts = indptr[uniq], indptr[uniq + 1] - indptr[uniq]
        # positions start_u .. start_u + n_u - 1 of every distinct user, as one flat index
        within = torch.arange(int(counts.sum()), device=indptr.device) - \
            torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        flat = self.history_items[torch.repeat_interleave(start, counts) + within]
        sums, n = self.bag_sums(flat, counts)[inverse], counts[inverse]
        if leave_out is None:
            return sums / n.clamp(min=1)[:, None].to(sums.dtype)
        own = self.embedding[self.item_rows[leave_out]].to(sums.dtype)
        others = (n - 1).clamp(min=1)[:, None].to(sums.dtype)
        return torch.where((n > 1)[:, None], (sums - own) / others, torch.zeros_like(sums))

    def _user(self, fields: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        """The user tower on the field embeddings; with a history, the id field is replaced."""
        if self.history:           # the user-id field is the first d columns (field 0)
            fields = torch.cat([history.to(fields.dtype),
                                fields[..., self.embedding.shape[1]:]], dim=-1)
        return F.normalize(self.user_tower(fields), dim=-1)

    def vectors(self, side: str, rows: torch.Tensor | None = None,
                leave_out: torch.Tensor | None = None) -> torch.Tensor:
        """Unit vectors of ``rows`` of users (``side="user"``) or items: (*rows.shape, out).

        Only the towers of the rows asked for run (every row when ``rows`` is None). For users
        of a history model, ``leave_out`` (the batch's positives) gives the training input.
        """
        fields = self.inputs.fields(side, self.embedding, rows)
        if side == "user":
            return self._user(fields, self.history_input(rows, leave_out)
                              if self.history else None)
        return F.normalize(self.item_tower(fields), dim=-1)

    def encode(self, rows: torch.Tensor, flat_items: torch.Tensor,
               counts: torch.Tensor) -> torch.Tensor:
        """Unit user vectors from explicit histories; ``rows == -1`` is an unknown user.

        An unknown user's side-feature fields are zero vectors.
        """
        known = rows >= 0
        fields = self.embedding.new_zeros(len(rows), self.inputs.n_user_fields *
                                          self.embedding.shape[1])
        if bool(known.any()):
            fields[known] = self.inputs.fields("user", self.embedding, rows[known])
        sums = self.bag_sums(flat_items, counts)
        return self._user(fields, sums / counts.clamp(min=1)[:, None].to(sums.dtype))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # users (B,), items (B, c) -> (B, c)
        u = self.vectors("user", users)                                   # (B, d)
        v = self.vectors("item", items)                                   # (B, c, d)
        return (v @ u[:, :, None]).squeeze(-1) / self.temperature

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.vectors("user", users) @ self.vectors("item").T / self.temperature


class TwoTower(FeatureInputs):
    r"""Two-tower retrieval model over ids and side features, trained with in-batch softmax.

    .. math::

        s(u, i) = \frac{\langle u(x_u), v(x_i) \rangle}{\tau}, \qquad
        L = -\frac1B \sum_b \log \operatorname{softmax}_c
            \big(s(u_b, i_c) - \log Q(i_c)\big)_b

    With ``history=True`` the user tower's input :math:`x_u` holds, in place of the user-id
    field, the mean item-id embedding of the user's training items :math:`\mathcal I_u`,
    left-one-out for the example's own positive during training (see the module docstring):

    .. math::

        h_u = \frac{1}{|\mathcal I_u|} \sum_{j \in \mathcal I_u} e_j \text{ (scoring)},
        \qquad h_{u \setminus i} = \frac{1}{|\mathcal I_u| - 1}
        \sum_{j \in \mathcal I_u \setminus \{i\}} e_j \text{ (training, 0 if } |\mathcal I_u| = 1),

    and a batch column whose item is in :math:`\mathcal I_{u_b}` is not a negative of row
    :math:`b`.

    Parameters
    ----------
    n_factors : int
        Length of each field embedding.
    layers : list of int
        Hidden widths of each tower's MLP (empty: one linear map).
    out : int
        Length of the user and item vectors.
    temperature : float
        :math:`\tau > 0`; the vectors have unit length, so it sets how peaked the softmax is.
    log_q : bool
        Apply the log-Q correction (the point of Yi et al., 2019; off shows why it matters).
    features : "auto", None or list of str
        As for :class:`~reclib.neural.FM`.
    history : bool
        Replace the user-id field of the user tower by the mean item-id embedding of the
        user's training items (FISM-style; Kabbur et al., 2013), so a user's vector follows
        their history and :meth:`encode_users` can re-encode a user after new events. False
        (the default) is the id-and-features model.
    n_epochs, batch_size, lr, weight_decay, patience, validation_fraction, random_state, device, verbose
        Training settings of :class:`~reclib.neural.NeuralRecommender`.
    precision : {"fp32", "bf16"}
        bfloat16 autocast of the towers during training (:class:`~reclib.neural.Trainer`);
        scoring is always in full precision.

    Attributes
    ----------
    user_vectors_, item_vectors_ : ndarray of shape (n_users, out), (n_items, out)
        The towers' outputs after training (what a serving index holds).
    history_indptr_, history_items_ : ndarray of int64
        With ``history=True``: each user's training item indices as CSR (user ``u``'s are
        ``history_items_[history_indptr_[u]:history_indptr_[u + 1]]``, ascending).
    """

    def __init__(self, n_factors: int = 64, layers=[128], out: int = 64,
                 temperature: float = 0.1, log_q: bool = True, features="auto",
                 history: bool = False, n_epochs: int = 20, batch_size: int = 512,
                 lr: float = 2e-3, weight_decay: float = 0.0, patience: int | None = None,
                 validation_fraction: float = 0.0, random_state=None, device: str = "auto",
                 verbose: bool = False, precision: str = "fp32"):
        self.n_factors = n_factors
        self.layers = layers
        self.out = out
        self.temperature = temperature
        self.log_q = log_q
        self.features = features
        self.history = history
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.precision = precision

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("out", self.out, minimum=1)
        check_float("temperature", self.temperature, strictly_positive=True)
        check_bool("history", self.history)
        if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
               for w in self.layers):
            raise ValueError(f"layers == {self.layers!r}, must be a list of positive widths")

    def _prepare(self, data) -> None:
        super()._prepare(data)
        self.__dict__.pop("history_indptr_", None)
        self.__dict__.pop("history_items_", None)
        if self.history:
            self.history_indptr_, self.history_items_ = self._history_csr(data)

    def _history_csr(self, data) -> tuple[np.ndarray, np.ndarray]:
        """Each user's item indices of ``data`` as CSR ``(indptr, items)``, items ascending."""
        order = np.lexsort((data.items, data.users))
        counts = np.bincount(data.users, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return indptr, np.asarray(data.items, dtype=np.int64)[order]

    def _build_module(self) -> nn.Module:
        history = ((self.history_indptr_, self.history_items_) if self.history else None)
        return TwoTowerModule(self._layout_buffers(), self.n_features_, self.n_factors,
                              tuple(int(w) for w in self.layers), self.out, self.temperature,
                              history=history)

    def _initialise(self, module, train) -> None:
        # training inputs read the training part only (validation rows held out)
        if self.history:
            module.set_history(*self._history_csr(train))

    def _batches(self, train, rng):
        """Shuffled positive pairs with :math:`\\log Q` of their items."""
        counts = np.bincount(train.items, minlength=self.n_items)
        log_q = np.log(np.maximum(counts, 1) / train.n_interactions).astype(np.float32)
        order = rng.permutation(train.n_interactions)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            users, items = train.users[rows], train.items[rows]
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self._device)
                        for a in (users, items, log_q[items]))

    def _batch_loss(self, module, batch) -> torch.Tensor:
        users, items, log_q = batch
        # a history model leaves each example's own positive out of its history mean
        u = module.vectors("user", users, leave_out=items if self.history else None)  # (B, d)
        v = module.vectors("item", items)                                  # (B, d)
        logits = (u / self.temperature) @ v.T          # (B, B) cosines / tau, tau on (B, d)
        same = items[:, None] == items[None, :]
        if self.history:
            # the user's other training items are not negatives either: with them in the
            # denominator the tower learns to push down whatever is in the history
            same |= module.holds(users, items)
        same.fill_diagonal_(False)
        return in_batch_softmax_loss(logits, log_q if self.log_q else None, same)

    def _fit(self, data) -> None:
        super()._fit(data)
        module = self._get_module()
        if self.history:                       # score with every training item of the user
            module.set_history(self.history_indptr_, self.history_items_)
        with torch.no_grad():
            self.user_vectors_ = module.vectors("user").cpu().numpy().astype(np.float64)
            self.item_vectors_ = module.vectors("item").cpu().numpy().astype(np.float64)

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def encode_users(self, histories, users=None) -> np.ndarray:
        r"""Unit user vectors ``(len(histories), out)`` (float64) of explicit item histories.

        The history field is the plain mean :math:`h = \frac1n \sum_{j} e_j` over the given
        item indices, as at scoring time (no leave-one-out); repeated entries count each time
        (the model's own histories hold each item once). For a training user ``u`` with
        ``history_items_`` of ``u`` this equals ``user_vectors_[u]``.

        Parameters
        ----------
        histories : sequence of array-like of int
            Item indices (``0 .. n_items - 1``, not raw ids) of each user; may be empty
            (the history field is then the zero vector).
        users : sequence of (int or None), optional
            Each history's user row (``0 .. n_users - 1``), whose side features fill the other
            fields (the tower reads no user id); None (for all, or for one entry) is a user the
            model never saw, whose side-feature fields are zero vectors. Without user side
            features (``features=None``) the row makes no difference: the vector is a function
            of the history alone.

        Returns
        -------
        ndarray of shape (len(histories), out), float64
            Unit vectors; :math:`\langle x, v_i \rangle / \tau` with ``item_vectors_`` are
            the model's scores.

        Raises
        ------
        ValueError
            For a model fitted with ``history=False``, an item index outside
            ``0 .. n_items - 1`` or a bad user row.
        TypeError
            For a history that does not hold integers.
        """
        self._check_is_fitted()
        if not self.history or "history_items_" not in vars(self):
            raise ValueError("encode_users needs a TwoTower fitted with history=True; this "
                             "one has history=False, so its user vectors read no history")
        if isinstance(histories, np.ndarray) and histories.ndim == 1 and \
                histories.dtype != object:
            raise TypeError("histories must be a sequence of item-index arrays, got one "
                            "flat array; wrap it in a list for a single user")
        arrays = []
        for n, h in enumerate(histories):
            a = np.asarray(h)
            if a.size == 0:
                a = np.zeros(0, dtype=np.int64)
            if a.ndim != 1:
                raise ValueError(f"histories[{n}] has shape {a.shape}, must be 1-D")
            if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
                raise TypeError(f"histories[{n}] has dtype {a.dtype}, must hold integer "
                                f"item indices")
            if len(a) and (a.min() < 0 or a.max() >= self.n_items):
                bad = a[(a < 0) | (a >= self.n_items)][0]
                raise ValueError(f"histories[{n}] holds item index {int(bad)}, outside "
                                 f"0 .. {self.n_items - 1}")
            arrays.append(a.astype(np.int64))
        rows = np.full(len(arrays), -1, dtype=np.int64)
        if users is not None:
            users = list(users)
            if len(users) != len(arrays):
                raise ValueError(f"users has {len(users)} entries for {len(arrays)} histories")
            for n, u in enumerate(users):
                if u is None:
                    continue
                if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)) \
                        or not 0 <= u < self.n_users:
                    raise ValueError(f"users[{n}] == {u!r}, must be None or a user row in "
                                     f"0 .. {self.n_users - 1}")
                rows[n] = u
        if not arrays:
            return np.zeros((0, self.out))
        module = self._get_module()
        device = module.embedding.device
        with torch.no_grad(), limited_threads():
            counts = torch.as_tensor([len(a) for a in arrays], dtype=torch.int64, device=device)
            flat = torch.as_tensor(np.concatenate(arrays), device=device)
            vectors = module.encode(torch.as_tensor(rows, device=device), flat, counts)
        return vectors.double().cpu().numpy()
