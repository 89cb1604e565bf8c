"""Scaling past one CPU: training throughput, time to a validation nDCG, memory and the roofline.

Usage::

    python benchmarks/scaling.py --device cpu                       # 1M,5M on this machine
    python benchmarks/scaling.py --device cuda --sizes 1M,10M,100M  # on a GPU machine
    python benchmarks/scaling.py --quick --out /tmp/x               # the CI smoke run
    python benchmarks/scaling.py --device cpu --sizes 1M --models ials --add  # one more row

**Data.** :func:`reclib.datasets.synthetic.synthetic_interactions` with ``n_users = N / 20``,
``n_items = N / 50``, Zipf item popularity (``alpha=1``) and user activity
(``user_alpha=0.5``), seed 0, as in ``scale_cpu.py``. Every model gets the same split:
:func:`reclib.split.per_user_holdout` holds out 10 % of each user's rows (seed 1); the
validation score is nDCG@10 of full rankings (training items excluded) for a fixed sample of
at most 2000 of the held-out users (seed 2), the same users for every model and epoch.

**Models** (64 factors each):

* ``bprmf``: :class:`reclib.neural.BPRMF` at its defaults: sparse tables, row-wise Adagrad,
  fp32, so the fused closed-form step; ``bprmf_sparse_adam``: SparseAdam through autograd,
  fp32, and ``bprmf_bf16`` the same in bf16 autocast (both at the smallest size only);
* ``two_tower``: :class:`reclib.neural.TwoTower` (ids only, in-batch softmax);
* ``implicit_bpr``: ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (Cython), 2 threads,
  the CPU peer; ``reclib_bpr``: :class:`reclib.models.BPR` (numba). Both CPU only;
* ``ials``: :class:`reclib.neural.TorchImplicitALS` (implicit ALS, every row's CG of a sweep
  at once, 3 CG steps, fp32), a model of another loss: its "epochs" are sweeps, validated
  after each one through the model's ``_after_sweep`` hook, outside the timed sweep.

Each fit runs in a fresh subprocess, so its peak memory is its own: resident set (VmHWM,
reset at the start of ``fit``) on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU.
Per epoch we record the training seconds (validation excluded; implicit's are timed around
its per-epoch callback, the torch models' come from ``epoch_seconds_``) and the validation
nDCG@10, so the *time to target* is the training time summed up to the first epoch whose
score reaches :data:`TARGET_NDCG`. The numba BPR has no per-epoch hook: only its final score
is known, so its time to target is an upper bound (the whole fit) when the final score
reaches the target.

**Roofline.** :func:`reclib.roofline.bytes_per_interaction` gives the bytes an MF-BPR update
must move (rows, biases, optimiser state); :func:`reclib.roofline.measure_bandwidth` measures
the device's copy/triad bandwidth at the start of the run; the fraction is
``throughput * bytes / bandwidth``. For the two-tower model the count is
:func:`two_tower_bytes` (its dense embedding table is swept by Adam every step); for
``ials`` it is :func:`reclib.roofline.ials_sweep_bytes` (one CG sweep) over the training
interactions.

**Scoring.** Top-10 for 10 000 users with random 64-dimensional fp32 vectors over catalogues
of growing size, on the device through :func:`reclib.core.topk` (torch backend), in blocks of
users and items (:func:`blocked_topk`) so memory stays bounded; items scored per second is
``users * items / seconds``. On the CPU a catalogue is skipped when the rate of the previous
one predicts more than :data:`SCORING_MAX_S` seconds.

Writes ``benchmarks/results/scaling_<device>.json`` and ``.md`` (``--quick``:
``scaling_<device>_quick.*``, ignored by git) or into ``--out``. ``--add`` measures only the
``--models`` at the ``--sizes`` given and merges their rows into that existing file (a row of
the same model and size is replaced); the bandwidth its fractions use, the scoring table and
the other rows stay those of the earlier run, and the file lists every run that wrote it.
Not part of ``make test``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Default sizes (interactions) per device, and the quick (CI) sizes.
DEFAULT_SIZES = {"cpu": "1M,5M", "cuda": "1M,10M,100M"}
QUICK_SIZES = "20k,40k"
#: Catalogue sizes of the scoring benchmark.
DEFAULT_CATALOGUES = {"cpu": "10k,100k,1M", "cuda": "100k,1M,10M"}
QUICK_CATALOGUES = "2k,20k"
SCORING_USERS = 10_000
QUICK_SCORING_USERS = 1_000
SCORING_MAX_S = 120.0
#: Target of the time-to-target column: validation nDCG@10 on the fixed user sample. Chosen
#: on the smallest CPU size (1M): 90 % of the popularity ranking's 0.202 there, which
#: BPRMF (0.201) and implicit (0.199) passed after their first epoch in a pilot run. On these
#: data popularity is the only signal there is to learn, so the scores level off near the
#: popularity ranking's, and that score falls as the catalogue grows (N/50 items): a larger
#: size may never reach the target, and the table says so.
TARGET_NDCG = 0.18
VALIDATION_FRACTION = 0.1
VALIDATION_USERS = 2000
SPLIT_SEED, SAMPLE_SEED = 1, 2
N_FACTORS = 64
#: Model settings (a model's epochs come from :func:`epochs_for`).
BPRMF_SETTINGS = dict(lr=0.01, reg=1e-3, batch_size={"cpu": 16384, "cuda": 65536})
TWO_TOWER = dict(layers=[], out=64, lr=2e-3, batch_size={"cpu": 1024, "cuda": 8192})
IMPLICIT = dict(lr=0.01, reg=0.01, threads=2)
NUMBA_BPR = dict(lr=0.01, reg=0.01)
#: TorchImplicitALS at its defaults (those of reclib.models.ImplicitALS), 3 CG steps.
IALS = dict(reg=0.03, alpha=10.0, cg_steps=3)
#: Models at every size; extra variants run at the smallest size only; CPU-only models.
MODELS = ["bprmf", "two_tower", "implicit_bpr", "reclib_bpr", "ials"]
SMALLEST_ONLY = ["bprmf_sparse_adam", "bprmf_bf16"]
CPU_ONLY = {"implicit_bpr", "reclib_bpr"}
#: On the CPU the two-tower model runs up to this size (about 7 000 interactions/s here).
TWO_TOWER_CPU_MAX = 1_000_000
LABELS = {"bprmf": "reclib BPRMF (torch, row-wise Adagrad, fused step, fp32)",
          "bprmf_sparse_adam": "reclib BPRMF (torch, SparseAdam, fp32)",
          "bprmf_bf16": "reclib BPRMF (torch, SparseAdam, bf16 autocast)",
          "two_tower": "reclib TwoTower (torch, in-batch softmax)",
          "implicit_bpr": "implicit BPR (Cython)", "reclib_bpr": "reclib BPR (numba)",
          "ials": "reclib TorchImplicitALS (torch, CG, fp32)"}


def parse_size(text: str) -> int:
    """``"100k"`` -> 100000, ``"1M"`` -> 1000000, ``"2.5M"``, ``"1G"``; plain integers too."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not match:
        raise ValueError(f"size {text!r} is not a number with an optional k/M/G suffix "
                         f"(e.g. 100k, 1M, 100M)")
    scale = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}[match.group(2).lower()]
    value = float(match.group(1)) * scale
    if value < 1 or value != int(value):
        raise ValueError(f"size {text!r} is not a positive whole number")
    return int(value)


def parse_sizes(text: str, name: str) -> list[tuple[str, int]]:
    try:
        sizes = [(s.strip(), parse_size(s)) for s in text.split(",") if s.strip()]
    except ValueError as err:
        raise SystemExit(f"{name}: {err}") from None
    if not sizes:
        raise SystemExit(f"{name}: no size given in {text!r}")
    return sizes


def epochs_for(n: int, device: str, quick: bool) -> int:
    """Epochs of the BPR models: 8 up to 1M on the CPU and 3 above; 10 on a GPU."""
    if quick:
        return 3
    if device == "cuda":
        return 10
    return 8 if n <= 1_000_000 else 3


def two_tower_bytes(n_factors: int, n_table_rows: int, batch_size: int,
                    dense_adam: bool = True) -> float:
    r"""Bytes per interaction of the two-tower model's embedding traffic (an estimate).

    Each pair reads and writes its user row and its item row, :math:`2 \cdot 2 f \cdot 4`
    bytes in fp32 (the batch's other items serve as negatives, so they add no row). With a
    dense table and Adam, every step also sweeps the whole table of :math:`T` rows: reads of
    weight, gradient and two moments, writes of weight and two moments, and the backward's
    write of the dense gradient, 8 numbers per element, shared by the batch's :math:`B`
    pairs: :math:`8 \cdot 4\, T f / B`. The towers' MLP weights are not counted.
    """
    rows = 2 * 2 * n_factors * 4
    sweep = 8 * 4 * n_table_rows * n_factors / batch_size if dense_adam else 0.0
    return float(rows + sweep)


# ---------------------------------------------------------------- memory
# the /proc/self/status readers are scale_cpu.py's (the same peak-memory rule)
sys.path.insert(0, str(HERE))
from scale_cpu import _reset_peak, _status_mb, tiny_pairs  # noqa: E402


class PeakMemory:
    """Peak memory of the code in the ``with`` block: CUDA allocator peak or resident set."""

    def __init__(self, device: str):
        self.device = device

    def __enter__(self):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before_mb = torch.cuda.memory_allocated() / 2**20
        else:
            self.before_mb = _status_mb("VmRSS")
            self.reset = _reset_peak()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()
            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
            self.kind = "torch.cuda.max_memory_allocated"
        else:
            self.peak_mb = _status_mb("VmHWM")
            self.kind = ("resident set high-water mark during the run (VmHWM)" if self.reset
                         else "resident set high-water mark of the process (ru_maxrss)")
        return False


def timed_fit(fit, device: str) -> tuple[float, PeakMemory]:
    """Wall seconds of ``fit()`` (on a GPU, until its queue has drained) and its peak memory."""
    with PeakMemory(device) as mem:
        start = time.perf_counter()
        fit()
        if device == "cuda":
            import torch
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    return wall, mem


# ---------------------------------------------------------------- validation
def load_split(path: str):
    """The interactions of ``path`` and the split and validation sample every model shares."""
    import scipy.sparse as sp

    from reclib import Interactions
    from reclib.split import per_user_holdout

    arr = np.load(path)
    n_users, n_items = int(arr[2, 0]), int(arr[2, 1])
    X = sp.csr_matrix((np.ones(arr.shape[1], np.float32), (arr[0], arr[1])),
                      shape=(n_users, n_items))
    del arr
    data = Interactions.from_csr(X)
    train, valid = per_user_holdout(data, VALIDATION_FRACTION, random_state=SPLIT_SEED)
    users = np.unique(valid.users)
    rng = np.random.default_rng(SAMPLE_SEED)
    sample = np.sort(rng.choice(users, size=min(VALIDATION_USERS, len(users)), replace=False))
    valid_sample = valid.subset(np.isin(valid.users, sample))
    return data, train, valid_sample


def ndcg_from_factors(users_f, items_f, bias, train_csr, valid) -> float:
    """nDCG@10 of ``valid`` for factor models (NumPy scores, :func:`reclib.core.topk`)."""
    from reclib._training import holdout_ndcg
    from reclib.core import topk

    n_items = items_f.shape[0]
    step = max(1, 2**22 // n_items)

    def rank(users):
        out = []
        for b in range(0, len(users), step):
            block = users[b:b + step]
            scores = users_f[block] @ items_f.T
            if bias is not None:
                scores = scores + bias
            out.append(topk(scores, 10, exclude=train_csr[block])[0])
        return np.concatenate(out)
    return holdout_ndcg(rank, valid.users, valid.items, n_items)


def popularity_ndcg(train, valid) -> float:
    """nDCG@10 of ranking every user's unseen items by training popularity (a reference)."""
    counts = np.bincount(train.items, minlength=train.n_items).astype(np.float64)
    return ndcg_from_factors(np.ones((train.n_users, 1)), counts[:, None], None,
                             train.to_csr(binary=True), valid)


def bench_class(base, train, valid):
    """``base`` (a NeuralRecommender) validated on the shared split and user sample.

    The two hooks the estimator documents for this: ``_carve_validation`` returns the
    shared split, and ``_validation_score`` ranks only the sampled users (their seen rows
    cut once), with the estimator's own on-device top-k."""
    from reclib._training import holdout_ndcg

    seen = train.to_csr(binary=True)
    users = np.unique(valid.users)
    seen_users = seen[users]

    class Bench(base):
        def _carve_validation(self, data, rng):
            return train, valid

        def _validation_score(self, module, train_, valid_):
            step = max(1, 2**22 // self.n_items)
            pos = {int(u): r for r, u in enumerate(users)}

            def rank(us):
                rows = np.array([pos[int(u)] for u in us])
                return np.concatenate([
                    self._module_topk(module, us[b:b + step], 10,
                                      seen_users[rows[b:b + step]], None)[0]
                    for b in range(0, len(us), step)])
            return holdout_ndcg(rank, valid.users, valid.items, self.n_items)

    Bench.__name__ = Bench.__qualname__ = base.__name__
    return Bench


def time_to_target(epoch_seconds, scores, target=TARGET_NDCG):
    """(seconds, epoch) of the first epoch whose score reaches ``target``, or (None, None)."""
    total = 0.0
    for epoch, (s, score) in enumerate(zip(epoch_seconds, scores), start=1):
        total += s
        if score >= target:
            return total, epoch
    return None, None


# ---------------------------------------------------------------- one fit (a subprocess)
def _tiny_interactions():
    import scipy.sparse as sp

    from reclib import Interactions

    # scale_cpu's warm-up pairs: they hold enough items for the numba BPR's stratified kernel
    users, items, _ = tiny_pairs()
    X = sp.csr_matrix((np.ones(len(items), np.float32), (users, items)), shape=(50, 1200))
    return Interactions.from_csr(X)


def fit_worker(model: str, path: str, device: str, n_epochs: int) -> dict:
    """One model fitted on one data set; the row of the training table."""
    import torch

    from reclib.roofline import bytes_per_interaction

    data, train, valid = load_split(path)
    n_train = train.n_interactions
    seen = train.to_csr(binary=True)
    row = {"n_train": int(n_train), "n_validation_users": int(len(np.unique(valid.users))),
           "n_epochs": n_epochs, "device": device}
    if model in ("implicit_bpr", "reclib_bpr"):
        threads = IMPLICIT["threads"]
        if model == "implicit_bpr":
            from implicit.cpu.bpr import BayesianPersonalizedRanking

            def make(epochs):
                return BayesianPersonalizedRanking(
                    factors=N_FACTORS, iterations=epochs, learning_rate=IMPLICIT["lr"],
                    regularization=IMPLICIT["reg"], random_state=0, num_threads=threads)
            make(1).fit(_tiny_interactions().to_csr(binary=True), show_progress=False)
            m = make(n_epochs)
            seconds, scores = [], []
            clock = {"last": 0.0}

            def callback(epoch, elapsed, *rest):
                now = time.perf_counter()
                seconds.append(now - clock["last"])
                scores.append(ndcg_from_factors(m.user_factors, m.item_factors, None, seen,
                                                valid))
                clock["last"] = time.perf_counter()
            with PeakMemory("cpu") as mem:
                clock["last"] = start = time.perf_counter()
                m.fit(seen, show_progress=False, callback=callback)
                wall = time.perf_counter() - start
            final = scores[-1]
            row.update(epoch_seconds=seconds, val_ndcg=scores, threads=threads,
                       optimizer="sgd", precision="fp32",
                       batch_size=1, per_epoch_validation=True)
        else:
            import numba

            from reclib.models import BPR

            def make(epochs):
                return BPR(n_factors=N_FACTORS, n_epochs=epochs, lr=NUMBA_BPR["lr"],
                           reg=NUMBA_BPR["reg"], random_state=0)
            make(1).fit(_tiny_interactions())
            m = make(n_epochs)
            wall, mem = timed_fit(lambda: m.fit(train), "cpu")
            final = ndcg_from_factors(m.user_factors_, m.item_factors_, m.item_bias_, seen, valid)
            row.update(epoch_seconds=[wall / n_epochs] * n_epochs, val_ndcg=None,
                       threads=numba.get_num_threads(), optimizer="sgd", precision="fp32",
                       batch_size=1, per_epoch_validation=False)
        bpi = bytes_per_interaction(N_FACTORS, "sgd")
        row["bytes_formula"] = "bytes_per_interaction(64, 'sgd') (rows, biases; no state)"
    elif model == "ials":
        fields, final, bpi, wall, mem = _fit_ials(train, valid, seen, device, n_epochs)
        row.update(fields)
    else:
        from reclib.neural import TwoTower
        from reclib.neural._train import N_THREADS

        if model.startswith("bprmf"):
            from reclib.neural import BPRMF
            Base = BPRMF
            optimizer = "rowwise_adagrad" if model == "bprmf" else "sparse_adam"
            precision = "bf16" if model == "bprmf_bf16" else "fp32"
            batch = BPRMF_SETTINGS["batch_size"][device]
            Model = bench_class(BPRMF, train, valid)
            kwargs = dict(n_factors=N_FACTORS, n_epochs=n_epochs, batch_size=batch,
                          lr=BPRMF_SETTINGS["lr"], reg=BPRMF_SETTINGS["reg"], sparse=True,
                          optimizer=optimizer, precision=precision)
        else:
            Base = TwoTower
            Model = bench_class(TwoTower, train, valid)
            batch = TWO_TOWER["batch_size"][device]
            kwargs = dict(n_factors=N_FACTORS, layers=TWO_TOWER["layers"], out=TWO_TOWER["out"],
                          n_epochs=n_epochs, batch_size=batch, lr=TWO_TOWER["lr"])
            optimizer = getattr(TwoTower(), "optimizer", "adam")
            precision = getattr(TwoTower(), "precision", "fp32")
        common = dict(validation_fraction=VALIDATION_FRACTION, device=device, random_state=0)
        Base(**{**kwargs, "n_epochs": 1}, device=device, random_state=0).fit(
            _tiny_interactions())                                   # warm-up, not timed
        m = Model(**kwargs, **common)
        wall, mem = timed_fit(lambda: m.fit(data), device)
        seconds = [float(s) for s in m.epoch_seconds_]
        scores = [float(s) for s in m.val_history_]
        final = scores[-1]
        row.update(epoch_seconds=seconds, val_ndcg=scores, threads=N_THREADS,
                   optimizer=optimizer, precision=precision, batch_size=batch,
                   per_epoch_validation=True)
        if model.startswith("bprmf"):
            bpi = bytes_per_interaction(N_FACTORS, optimizer)
            row["bytes_formula"] = (f"bytes_per_interaction(64, {optimizer!r}) (weights and "
                                    f"optimiser state fp32 also under bf16 autocast)")
        else:
            bpi = two_tower_bytes(N_FACTORS, data.n_users + data.n_items, batch,
                                  dense_adam=optimizer == "adam")
            row["bytes_formula"] = ("two_tower_bytes: user and item rows, plus the dense Adam "
                                    "sweep of the id table per step / batch")
        if device == "cpu":
            row["threads"] = N_THREADS
    throughputs = [n_train / s for s in row["epoch_seconds"]]
    t_target, epoch = ((None, None) if row["val_ndcg"] is None else
                       time_to_target(row["epoch_seconds"], row["val_ndcg"]))
    bound_only = row["val_ndcg"] is None and final >= TARGET_NDCG
    row.update(throughput=float(statistics.median(throughputs)),
               throughput_per_epoch=throughputs, final_ndcg=float(final),
               time_to_target_s=t_target, target_epoch=epoch,
               target_reached=bool(final >= TARGET_NDCG if row["val_ndcg"] is None
                                   else t_target is not None),
               time_to_target_upper_s=sum(row["epoch_seconds"]) if bound_only else None,
               fit_wall_s=wall, peak_memory_mb=mem.peak_mb, memory_before_fit_mb=mem.before_mb,
               memory_kind=mem.kind, bytes_per_interaction=float(bpi))
    return row


def _fit_ials(train, valid, seen, device: str, n_epochs: int):
    """TorchImplicitALS on the training part, validated after every sweep (not timed).

    Returns the row's fields, the final score, the bytes per interaction, the fit's wall
    seconds and its :class:`PeakMemory`."""
    import torch

    from reclib._training import holdout_ndcg
    from reclib.core import topk
    from reclib.neural import TorchImplicitALS
    from reclib.neural._train import N_THREADS
    from reclib.roofline import ials_sweep_bytes

    users = np.unique(valid.users)
    seen_users = seen[users]
    pos = {int(u): r for r, u in enumerate(users)}
    scores = []

    class Bench(TorchImplicitALS):
        def _after_sweep(self, sweep, user_factors, item_factors):
            dev = user_factors.device
            mine = user_factors.index_select(0, torch.as_tensor(users, device=dev))
            step = max(1, 2**22 // item_factors.shape[0])

            def rank(us):               # on the device, through the core's top-k
                rows = np.array([pos[int(u)] for u in us])
                out = []
                for b in range(0, len(rows), step):
                    block = rows[b:b + step]
                    block_scores = mine[torch.as_tensor(block, device=dev)] @ item_factors.T
                    top = topk(block_scores, 10, exclude=seen_users[block])[0]
                    out.append(top.cpu().numpy())
                return np.concatenate(out)
            scores.append(holdout_ndcg(rank, valid.users, valid.items, item_factors.shape[0]))

    Bench.__name__ = Bench.__qualname__ = TorchImplicitALS.__name__
    kwargs = dict(n_factors=N_FACTORS, reg=IALS["reg"], alpha=IALS["alpha"],
                  cg_steps=IALS["cg_steps"], device=device, random_state=0)
    TorchImplicitALS(**kwargs, n_epochs=1).fit(_tiny_interactions())   # warm-up, not timed
    m = Bench(**kwargs, n_epochs=n_epochs)
    wall, mem = timed_fit(lambda: m.fit(train), device)
    n_train = train.n_interactions
    sweep_bytes = ials_sweep_bytes(N_FACTORS, train.n_users, train.n_items, n_train,
                                   IALS["cg_steps"])
    fields = dict(epoch_seconds=[float(s) for s in m.epoch_seconds_], val_ndcg=scores,
                  threads=N_THREADS, optimizer="cg", precision="fp32", batch_size=None,
                  cg_steps=IALS["cg_steps"], per_epoch_validation=True,
                  bytes_formula=(f"ials_sweep_bytes(64, {train.n_users}, {train.n_items}, "
                                 f"{n_train}, cg_steps={IALS['cg_steps']}) / {n_train} (per "
                                 f"nonzero and pass its gathered row; per row and pass its "
                                 f"vector and accumulation; the dense CG rows per step)"))
    return fields, scores[-1], sweep_bytes / n_train, wall, mem


def scoring_worker(n_items: int, n_users: int, device: str) -> dict:
    import torch

    from reclib.neural._train import N_THREADS

    if device == "cpu":
        torch.set_num_threads(N_THREADS)
    gen = torch.Generator(device=device).manual_seed(0)
    U = torch.randn(n_users, N_FACTORS, generator=gen, device=device)
    V = torch.randn(n_items, N_FACTORS, generator=gen, device=device)
    budget = 2**28 if device == "cuda" else 2**23
    item_block = min(n_items, 2**20 if device == "cuda" else 2**17)
    blocked_topk(U[:8], V[:min(n_items, 4096)], 10, budget, item_block)     # warm-up
    with PeakMemory(device) as mem:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        idx, _ = blocked_topk(U, V, 10, budget, item_block)
        idx = idx.cpu()
        seconds = time.perf_counter() - start
    assert idx.shape == (n_users, 10)
    return {"n_items": n_items, "n_users": n_users, "seconds": seconds,
            "items_scored_per_s": n_users * n_items / seconds, "cell_budget": budget,
            "item_block": item_block, "peak_memory_mb": mem.peak_mb,
            "memory_before_mb": mem.before_mb, "memory_kind": mem.kind,
            "threads": N_THREADS if device == "cpu" else None}


def blocked_topk(U, V, k: int, cell_budget: int, item_block: int):
    """Top-``k`` items of every row of ``U @ V.T`` in blocks of at most ``cell_budget`` cells.

    Each (user block, item block) goes through :func:`reclib.core.topk`; a user block's
    per-item-block winners are merged by one more :func:`~reclib.core.topk` over their
    scores. Winners are concatenated block by block, each block's sorted by score and then
    by index, so among equal scores a lower position is a lower item index: the merge keeps
    the core's tie rule (lower index first) and the result equals ``topk(U @ V.T, k)``.
    """
    import torch

    from reclib.core import topk

    n_users, n_items = U.shape[0], V.shape[0]
    item_block = max(1, min(item_block, n_items))
    user_block = max(1, cell_budget // item_block)
    out_idx, out_val = [], []
    for ub in range(0, n_users, user_block):
        Ub = U[ub:ub + user_block]
        parts_idx, parts_val = [], []
        for ib in range(0, n_items, item_block):
            scores = Ub @ V[ib:ib + item_block].T
            idx, val = topk(scores, min(k, scores.shape[1]))
            parts_idx.append(idx + ib)
            parts_val.append(val)
        if len(parts_idx) == 1:
            idx, val = parts_idx[0], parts_val[0]
        else:
            cand_idx, cand_val = torch.cat(parts_idx, dim=1), torch.cat(parts_val, dim=1)
            pos, val = topk(cand_val, k)
            idx = torch.gather(cand_idx, 1, pos)
        out_idx.append(idx)
        out_val.append(val)
    return torch.cat(out_idx), torch.cat(out_val)


# ---------------------------------------------------------------- driver
def run_worker(args: list[str], timeout: float, in_process: bool = False) -> dict:
    """One fit or scoring run in a fresh subprocess (its own peak memory), or here."""
    if in_process:
        return json.loads(json.dumps(_dispatch(args)))
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True,
                         text=True, timeout=timeout)
    if out.returncode != 0:
        lines = [x for x in out.stderr.strip().splitlines() if x.strip()]
        raise RuntimeError(f"{args[0]} {' '.join(args[1:2])} failed: "
                           f"{lines[-1] if lines else 'exit ' + str(out.returncode)}\n"
                           f"{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_data(n: int, path: Path) -> dict:
    from reclib.datasets.synthetic import synthetic_interactions

    n_users, n_items = max(n // 20, 1), max(n // 50, 1)
    df = synthetic_interactions(n_users, n_items, n, alpha=1.0, seed=0, user_alpha=0.5)
    arr = np.zeros((3, n), dtype=np.int32)
    arr[0], arr[1] = df.user_id.to_numpy(), df.item_id.to_numpy()
    arr[2, 0], arr[2, 1] = n_users, n_items              # the shape rides in the third row
    np.save(path, arr)
    return {"n_interactions": n, "n_users": n_users, "n_items": n_items,
            "users_seen": int(df.user_id.nunique()), "items_seen": int(df.item_id.nunique())}


def machine(device: str) -> dict:
    import numba
    import torch

    import reclib

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"reclib": reclib.__version__, "torch": torch.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    for name in ("implicit", "numba", "scipy"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    info = {"device": device, "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "system": f"{platform.system()} {platform.release()}", "versions": versions,
            "torch_threads_default": torch.get_num_threads(),
            "numba_threads": numba.get_num_threads(),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(device_name=torch.cuda.get_device_name(0), cuda_runtime=torch.version.cuda,
                    gpu_memory_gb=round(props.total_memory / 2**30, 1),
                    nvidia_driver=_nvidia_driver())
    else:
        info.update(device_name=info["cpu"], cuda_runtime=torch.version.cuda,
                    nvidia_driver=None)
    return info


def _nvidia_driver() -> str | None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def bandwidth(device: str, quick: bool) -> dict:
    from reclib.roofline import measure_bandwidth

    n_bytes = 2**25 if quick else (2**30 if device == "cuda" else 2**28)
    if device == "cuda":
        by = {"gpu": measure_bandwidth("cuda", n_bytes=n_bytes, repeats=10)}
    else:
        by = {f"{t} thread{'s' if t > 1 else ''}": measure_bandwidth("cpu", n_bytes=n_bytes,
                                                                      n_threads=t)
              for t in sorted({1, min(2, os.cpu_count() or 1)})}
    return {"bytes_per_s": max(by.values()), "by_threads": by, "array_bytes": n_bytes,
            "method": "STREAM copy and triad on float32 torch tensors, median of the "
                      "repeats, the better kernel (reclib.roofline.measure_bandwidth)"}


def fmt_s(x):
    return "not reached" if x is None else f"{x:.1f}"


def markdown(p: dict) -> str:
    m, bw = p["machine"], p["bandwidth"]
    device = p["device"]
    lines = [f"# Scaling: training and scoring on {device.upper()}", "",
             f"Device: {m['device_name']}; {m['cores']} cores, {m['system']}; torch "
             f"{m['versions']['torch']} (CUDA runtime {m['cuda_runtime']}, driver "
             f"{m['nvidia_driver']}), numpy {m['versions']['numpy']}, implicit "
             f"{m['versions']['implicit']}, numba {m['versions']['numba']}, reclib "
             f"{m['versions']['reclib']}. Load average (1, 5, 15 min) before: "
             f"{p['load_before']}, after: {p['load_after']}"
             f"{'' if p.get('complete') else ' (run cut short)'}; the machine is shared, so "
             f"the load is part of the result.", "",
             f"Measured bandwidth (STREAM copy/triad on torch tensors): "
             + ", ".join(f"{k}: {v / 1e9:.1f} GB/s" for k, v in bw["by_threads"].items())
             + f"; the bound uses {bw['bytes_per_s'] / 1e9:.1f} GB/s.", "",
             f"Data: synthetic power-law pairs, n_users = N/20, n_items = N/50; 10 % of each "
             f"user's rows held out, nDCG@10 on {VALIDATION_USERS} sampled held-out users "
             f"(full ranking, training items excluded). Target nDCG@10: {p['target_ndcg']} "
             f"({p['target_rule']}).", "",
             "## Training", "",
             "| model | N | epochs | interactions/s | s/epoch | time to target s | "
             "final nDCG@10 | popularity nDCG@10 | peak MB | bytes/interaction | "
             "fraction of bound | threads | / implicit |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in p["training"]:
        t = fmt_s(r["time_to_target_s"])
        if r["time_to_target_s"] is None and r.get("time_to_target_upper_s") is not None:
            t = f"<= {r['time_to_target_upper_s']:.1f} (b)"
        ratio = "" if r.get("throughput_vs_implicit") is None else \
            f"{r['throughput_vs_implicit']:.2f}x"
        lines.append(
            f"| {r['label']} | {r['size']} | {r['n_epochs']} | {r['throughput']:,.0f} | "
            f"{statistics.median(r['epoch_seconds']):.2f} | {t} | {r['final_ndcg']:.4f} | "
            f"{p['data'][r['size']]['popularity_ndcg']:.4f} | {r['peak_memory_mb']:.0f} | "
            f"{r['bytes_per_interaction']:,.0f} | {r['roofline_fraction']:.3f} | "
            f"{r['threads']} | {ratio} |")
    lines += ["", "Interactions/s is the median over epochs of training rows / epoch seconds "
              "(validation excluded). Time to target sums the epochs up to the first whose "
              "validation nDCG@10 reaches the target. (b): the numba BPR has no per-epoch "
              "hook, so only its final score is known and the whole fit is an upper bound. "
              "Bytes/interaction is the floor of reclib.roofline.bytes_per_interaction (rows, "
              "biases and optimiser state read and written; no index reads, gradient buffers "
              "or cache-line waste), so the fraction of the bound is a lower bound of the "
              "memory traffic actually achieved. A fraction above 1 would mean the tables sit "
              "in a cache faster than the memory measured. / implicit: throughput over "
              "implicit's at the same size."]
    if any(r["model"] == "ials" for r in p["training"]):
        lines += ["", "TorchImplicitALS minimises another loss (implicit ALS, "
                  f"{p['settings']['ials']['cg_steps']} CG steps per row and half-sweep): "
                  "its epochs are sweeps (users, then items), validated after each one "
                  "outside the timed sweep, and its interactions/s are training rows / sweep "
                  "seconds. Its bytes/interaction is reclib.roofline.ials_sweep_bytes over "
                  "the training rows: per pass over the nonzeros (one per CG step and one for "
                  "the start residual, each half) the gathered row of every nonzero, and per "
                  "row its vector and its accumulation, plus the dense CG rows per step; no "
                  "index reads, per-nonzero scalars or cache-line waste. Its throughput is not "
                  "set against implicit's BPR (another model)."]
    for a in p.get("additions", []):
        rows = ", ".join(f"{LABELS.get(m, m)} at {size}" for m, size in a["rows"])
        load = f"{a['load_before']} before, {a.get('load_after', '?')} after"
        lines += ["", f"Added later (`--add`): {rows or 'no rows'}, by `{a['command']}` on "
                  f"{a['date']} (load average {load}); the fraction of the bound uses the "
                  f"bandwidth measured by the first run, `{p['base_run']['command']}` on "
                  f"{p['base_run']['date']}, which measured every other row."]
    for r in p["training"]:
        if r["model"] == "bprmf" and r.get("throughput_vs_implicit") is not None:
            q = r["throughput_vs_implicit"]
            lines += ["", f"At {r['size']}, reclib's torch BPR (BPRMF, {r['threads']} torch "
                      f"thread{'s' if r['threads'] != 1 else ''}) trains at {q:.2f}x "
                      f"implicit's throughput (2 threads): the 2x target (ratio >= 0.5) is "
                      f"{'met' if q >= 0.5 else 'not met'}."]
    for size, info in p["data"].items():
        if info["popularity_ndcg"] < p["target_ndcg"]:
            lines += ["", f"At {size} the popularity ranking itself scores "
                      f"{info['popularity_ndcg']:.3f}, below the target: on these data no "
                      f"model can be expected to reach it there (see the target's rule)."]
    rows = {(r["model"], r["size"]): r for r in p["training"]}
    for (model, size), r in rows.items():
        fp32 = rows.get(("bprmf_sparse_adam", size))
        if model == "bprmf_bf16" and fp32 is not None:
            same = r["val_ndcg"] == fp32["val_ndcg"]
            lines += ["", f"bf16 against fp32 at {size}: {r['throughput']:,.0f} against "
                      f"{fp32['throughput']:,.0f} interactions/s; validation scores "
                      + ("identical epoch by epoch, so autocast changed none of the "
                         "operations that ran (embedding lookups and elementwise products "
                         "are not autocast operations on this device): the difference in "
                         "speed is not bf16 arithmetic, most likely the shared machine's "
                         "changing load." if same else
                         f"final {r['final_ndcg']:.4f} against {fp32['final_ndcg']:.4f}.")]
    lines += ["", "## Scoring (top-10, blocked)", "",
              "| users | items | seconds | items scored/s | peak MB |", "|---|---|---|---|---|"]
    for r in p["scoring"]:
        lines.append(f"| {r['n_users']:,} | {r['n_items']:,} | {r['seconds']:.2f} | "
                     f"{r['items_scored_per_s']:,.0f} | {r['peak_memory_mb']:.0f} |")
    lines += ["", "Random 64-dimensional fp32 vectors; scores computed and ranked on the "
              "device through reclib.core.topk (torch backend) in blocks of users and items, "
              "the blocks' winners merged with the same tie rule. Peak MB: "
              f"{p['scoring'][0]['memory_kind'] if p['scoring'] else ''}."]
    if p.get("not_run"):
        lines += ["", "Not run: " + "; ".join(p["not_run"]) + "."]
    lines += ["", f"GPU results: `{p['gpu_command']}` on a machine with a CUDA GPU "
              "(writes scaling_cuda.json/.md)."]
    return "\n".join(lines) + "\n"


def write(payload: dict, out: Path | None, quick: bool, final: bool = True) -> None:
    """Write the results with benchmarks/_results.py (into ``out`` when given); the partial
    writes after each fit (so a run cut short keeps what it measured) print nothing."""
    import contextlib
    import io

    sys.path.insert(0, str(HERE))
    import _results

    if not final:
        with contextlib.redirect_stdout(io.StringIO()):
            return write(payload, out, quick)

    name = f"scaling_{payload['device']}"
    if out is None:
        _results.write_results(name, payload, markdown(payload), quick)
        return
    # the same writer, pointed at another folder; the command it records stays the one typed
    saved, argv0 = _results.RESULTS, sys.argv[0]
    try:
        _results.RESULTS = out
        script = Path(sys.argv[0]).resolve()
        try:
            sys.argv[0] = str(script.relative_to(ROOT))
        except ValueError:
            pass
        _results.write_results(name, payload, markdown(payload), quick)
    finally:
        _results.RESULTS, sys.argv[0] = saved, argv0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--sizes", help="interactions, comma-separated, e.g. 1M,5M or "
                        "1M,10M,100M (default: 1M,5M on cpu, 1M,10M,100M on cuda)")
    parser.add_argument("--catalogues", help="scoring catalogue sizes (default: 10k,100k,1M "
                        "on cpu, 100k,1M,10M on cuda; none: no scoring)")
    parser.add_argument("--models", default=",".join(MODELS + SMALLEST_ONLY))
    parser.add_argument("--epochs", type=int, help="override the epochs of every model")
    parser.add_argument("--quick", action="store_true",
                        help=f"CI smoke run: sizes {QUICK_SIZES}, catalogues {QUICK_CATALOGUES}, "
                             f"{QUICK_SCORING_USERS} scoring users, 3 epochs")
    parser.add_argument("--out", type=Path, help="write the results here instead of "
                        "benchmarks/results")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per fit")
    parser.add_argument("--subprocess", action="store_true",
                        help="with --quick: still run each fit in its own subprocess (the "
                             "default without --quick; --quick runs them in this process, "
                             "as importing torch in every subprocess costs more than the fits)")
    parser.add_argument("--add", action="store_true",
                        help="measure only --models at --sizes and merge their rows into the "
                             "existing results of --device (and --quick/--out): a row of the "
                             "same model and size is replaced; the other rows, the scoring "
                             "table and the bandwidth the fractions use are kept")
    parser.add_argument("--markdown-only", action="store_true",
                        help="re-render the .md from the existing .json of --device (and "
                             "--quick/--out); measures nothing, keeps the recorded command")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_dispatch(args.worker)))
        return

    if args.markdown_only:
        return rerender(args)
    import torch

    device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU on this machine (torch "
                         f"{torch.__version__}, built for CUDA {torch.version.cuda}); run "
                         "with --device cpu, or on a machine with a GPU")
    sizes = parse_sizes(QUICK_SIZES if args.quick and not args.sizes else
                        args.sizes or DEFAULT_SIZES[device], "--sizes")
    catalogues = [] if args.catalogues == "none" else parse_sizes(
        QUICK_CATALOGUES if args.quick and not args.catalogues else
        args.catalogues or DEFAULT_CATALOGUES[device], "--catalogues")
    models = [s.strip() for s in args.models.split(",") if s.strip()]
    unknown = sorted(set(models) - set(LABELS))
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {sorted(LABELS)}")
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs == {args.epochs}, must be >= 1")
    if args.add and args.catalogues not in (None, "none"):
        raise SystemExit("--add measures training rows only; leave out --catalogues")
    earlier = _earlier_results(args) if args.add else None
    if args.add:
        catalogues = []
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    scoring_users = QUICK_SCORING_USERS if args.quick else SCORING_USERS
    in_process = args.quick and not args.subprocess
    payload = {"device": device, "quick": args.quick, "machine": machine(device),
               "isolation": ("in-process: peak memory is the process's high-water mark during "
                             "the run, earlier runs' leftovers included" if in_process else
                             "each fit and scoring run in a fresh subprocess"),
               "load_before": [round(x, 2) for x in os.getloadavg()],
               "target_ndcg": TARGET_NDCG,
               "target_rule": "90 % of the popularity ranking's 0.202 on the 1M CPU data, "
                              "which BPRMF (0.201) and implicit (0.199) passed after one "
                              "epoch in a pilot run; the scores level off near the "
                              "popularity ranking's, which falls as the catalogue grows",
               "validation": {"fraction": VALIDATION_FRACTION, "users": VALIDATION_USERS,
                              "split_seed": SPLIT_SEED, "sample_seed": SAMPLE_SEED},
               "settings": {"n_factors": N_FACTORS, "bprmf": BPRMF_SETTINGS, "two_tower": TWO_TOWER,
                            "implicit_bpr": IMPLICIT, "reclib_bpr": NUMBA_BPR, "ials": IALS},
               "gpu_command": "python benchmarks/scaling.py --device cuda --sizes 1M,10M,100M",
               "data": {}, "training": [], "scoring": [], "not_run": []}
    addition = None
    if earlier is not None:
        # the earlier run's file, its command and date kept; this run is listed as an addition
        addition = {"command": "python benchmarks/scaling.py " + " ".join(
                        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
                    "date": datetime.date.today().isoformat(), "rows": [],
                    "load_before": payload["load_before"], "machine": payload["machine"]}
        payload = earlier
        payload.setdefault("base_run", {"command": payload["command"], "date": payload["date"]})
        payload.setdefault("additions", []).append(addition)
        payload["settings"]["ials"] = IALS
        bw = payload["bandwidth"]
    else:
        print("measuring bandwidth", flush=True)
        payload["bandwidth"] = bw = bandwidth(device, args.quick)
    out = args.out
    smallest = min(n for _, n in sizes)
    plan = []
    for label, n in sorted(sizes, key=lambda s: s[1]):
        for model in MODELS + SMALLEST_ONLY:
            if model not in models or (model in SMALLEST_ONLY and n != smallest):
                continue
            if model in CPU_ONLY and device != "cpu":
                continue
            if model == "two_tower" and device == "cpu" and n > TWO_TOWER_CPU_MAX:
                payload["not_run"].append(f"two_tower at {label} on the CPU (about 7 000 "
                                          f"interactions/s here: over an hour per epoch "
                                          f"beyond {TWO_TOWER_CPU_MAX:,})")
                continue
            plan.append((label, n, model))
    with tempfile.TemporaryDirectory() as tmp:
        for label, n, model in plan:
            path = Path(tmp) / f"{label}.npy"
            if not path.exists():
                print(f"data {label}", flush=True)
                payload["data"][label] = info = make_data(n, path)
                _, train, valid = load_split(str(path))
                info["popularity_ndcg"] = popularity_ndcg(train, valid)
                del train, valid
            epochs = args.epochs or epochs_for(n, device, args.quick)
            if model == "two_tower" and args.epochs is None and not args.quick:
                epochs = 1 if device == "cpu" else 3
            print(f"fit {model} {label} x{epochs}", flush=True)
            payload["not_run"] = [x for x in payload["not_run"]
                                  if not x.startswith(f"{model} at {label}")]
            if addition is not None:
                addition["rows"].append([model, label])
            try:
                row = run_worker(["fit", model, str(path), device, str(epochs)], args.timeout,
                                 in_process)
            except (RuntimeError, subprocess.TimeoutExpired) as err:
                payload["not_run"].append(f"{model} at {label}: {str(err).splitlines()[0]}")
                print(err, flush=True)
                continue
            from reclib.roofline import roofline_fraction
            row.update(model=model, label=LABELS[model], size=label, n_interactions=n,
                       roofline_fraction=roofline_fraction(row["throughput"],
                                                           row["bytes_per_interaction"],
                                                           bw["bytes_per_s"]))
            _put_row(payload["training"], row)
            print({k: row[k] for k in ("model", "size", "throughput", "time_to_target_s",
                                       "final_ndcg", "peak_memory_mb", "roofline_fraction")},
                  flush=True)
            _ratios(payload)
            (payload if addition is None else addition)["load_after"] = [
                round(x, 2) for x in os.getloadavg()]
            payload["complete"] = False
            write(payload, out, args.quick, final=False)
    rate = None
    for label, n_items in catalogues:
        if device == "cpu" and rate is not None and scoring_users * n_items / rate > SCORING_MAX_S:
            payload["not_run"].append(
                f"scoring over {label} items on the CPU (predicted "
                f"{scoring_users * n_items / rate:.0f} s at the previous catalogue's rate, over "
                f"the {SCORING_MAX_S:.0f} s cap)")
            continue
        print(f"scoring {label}", flush=True)
        try:
            row = run_worker(["score", str(n_items), str(scoring_users), device],
                             args.timeout, in_process)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
            payload["not_run"].append(f"scoring over {label}: {str(err).splitlines()[0]}")
            continue
        row["catalogue"] = label
        rate = row["items_scored_per_s"]
        payload["scoring"].append(row)
        print(row, flush=True)
    (payload if addition is None else addition)["load_after"] = [
        round(x, 2) for x in os.getloadavg()]
    payload["complete"] = True
    write(payload, out, args.quick)


def _stem(args) -> Path:
    folder = args.out if args.out is not None else HERE / "results"
    return folder / f"scaling_{args.device}{'_quick' if args.quick else ''}"


def _earlier_results(args) -> dict:
    """The results file ``--add`` merges into (a clear exit when there is none)."""
    path = _stem(args).with_suffix(".json")
    if not path.exists():
        raise SystemExit(f"--add: there is no {path} to add rows to; run without --add first")
    payload = json.loads(path.read_text())
    if payload.get("device") != args.device or payload.get("quick") != args.quick:
        raise SystemExit(f"--add: {path} holds a run with device {payload.get('device')!r} "
                         f"and quick {payload.get('quick')}, not {args.device!r} and "
                         f"{args.quick}")
    return payload


def _put_row(rows: list, row: dict) -> None:
    """Replace the row of the same model and size in place, or append ``row``."""
    for n, r in enumerate(rows):
        if (r["model"], r["size"]) == (row["model"], row["size"]):
            rows[n] = row
            return
    rows.append(row)


def rerender(args) -> None:
    """The markdown of an existing results file, with the command and date it records."""
    stem = _stem(args)
    payload = json.loads(stem.with_suffix(".json").read_text())
    text = markdown(payload).rstrip("\n")
    text += f"\n\nProduced by `{payload['command']}` on {payload['date']}.\n"
    stem.with_suffix(".md").write_text(text)
    print(text)


def _dispatch(worker: list[str]) -> dict:
    kind, *rest = worker
    if kind == "fit":
        return fit_worker(rest[0], rest[1], rest[2], int(rest[3]))
    import torch
    threads = torch.get_num_threads()
    try:
        return scoring_worker(int(rest[0]), int(rest[1]), rest[2])
    finally:
        torch.set_num_threads(threads)


def _ratios(payload: dict) -> None:
    peers = {r["size"]: r["throughput"] for r in payload["training"]
             if r["model"] == "implicit_bpr"}
    for r in payload["training"]:       # BPR against BPR: not the ALS row, another loss
        r["throughput_vs_implicit"] = (r["throughput"] / peers[r["size"]]
                                       if r["size"] in peers
                                       and r["model"] not in ("implicit_bpr", "ials")
                                       else None)


if __name__ == "__main__":
    main()
