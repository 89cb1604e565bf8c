r"""The memory-bandwidth bound of embedding training: bytes per interaction and the roofline.

A step of matrix factorisation with the BPR loss does almost no arithmetic per byte: for a
triple :math:`(u, i, j)` it reads three rows of length :math:`f`, takes two dot products
and writes the three rows back (plus the optimiser's state of those rows). About
:math:`6f` multiply-adds against at least :math:`6f` numbers moved is an arithmetic
intensity near one flop per four bytes in fp32, far below what any CPU or GPU needs to be
compute-bound, so the speed limit is the memory system (the roofline model of Williams,
Waterman and Patterson, 2009):

.. math::

    \text{interactions/s} \le \frac{B}{b}, \qquad
    \text{fraction of the bound} = \frac{r \cdot b}{B},

with :math:`B` the achievable memory bandwidth in bytes/s (:func:`measure_bandwidth`),
:math:`b` the bytes one interaction must move (:func:`bytes_per_interaction`) and :math:`r`
the measured interactions per second (:func:`roofline_fraction`).

:math:`b` is a floor: it counts the rows the update must read and write and nothing else
(no index reads, no gradient buffers a framework materialises, no cache misses that fetch a
whole line for a few bytes). A run whose rows stay in a cache can therefore pass the DRAM
bound (fraction above 1): its bytes come from a faster memory than the one measured.

Implicit ALS by conjugate gradient (:class:`reclib.neural.TorchImplicitALS`) has no
per-interaction update: a sweep makes a few passes over all the nonzeros and over all the
factor rows. :func:`ials_sweep_bytes` counts the floor of one sweep; divided by the number
of training interactions it is the :math:`b` of the same bound.

References
----------
S. Williams, A. Waterman, D. Patterson, "Roofline: an insightful visual performance model
for multicore architectures", Communications of the ACM 52(4), 2009.
J. D. McCalpin, "Memory bandwidth and machine balance in current high performance
computers", IEEE TCCA Newsletter, 1995 (the STREAM benchmark).
"""

from __future__ import annotations

import math
import statistics

from ._validation import check_bool, check_choice, check_float, check_int

#: Optimisers :func:`bytes_per_interaction` knows, with the state numbers per parameter row:
#: ``"element"`` (a number per element of the row) or ``"row"`` (one number per row).
OPTIMIZER_STATE = {"sgd": (0, "element"), "adam": (2, "element"),
                   "sparse_adam": (2, "element"), "rowwise_adagrad": (1, "row")}

#: Kernels of :func:`measure_bandwidth` and the bytes each moves per element of one array:
#: copy ``b = a`` reads one array and writes one; triad ``a = b + s c`` reads two, writes one.
_KERNEL_ARRAYS = {"copy": 2, "triad": 3}


def bytes_per_interaction(n_factors: int, optimizer: str = "sgd", dtype_bytes: int = 4,
                          item_bias: bool = True, n_negatives: int = 1,
                          state_bytes: int | None = None) -> int:
    r"""Bytes one training interaction of MF-BPR reads and writes, counted row by row.

    For one positive pair :math:`(u, i)` with :math:`n` sampled negatives
    :math:`j_1, \dots, j_n`, the update reads and writes

    * the factor rows :math:`x_u, y_i, y_{j_1}, \dots, y_{j_n}`: :math:`R = 2 + n` rows of
      :math:`f` numbers, so :math:`R f` numbers read and :math:`R f` written;
    * the item biases :math:`b_i, b_{j_1}, \dots` when ``item_bias``: :math:`R_b = 1 + n`
      numbers read and :math:`R_b` written;
    * the optimiser's state of every row it touches, read and written:

      - ``"sgd"``: none;
      - ``"adam"`` / ``"sparse_adam"``: two moments per element, :math:`2 (R f + R_b)`
        numbers (Adam proper updates every row of the table each step; the count is the
        touched rows only, which is what SparseAdam does and a lower bound for dense Adam);
      - ``"rowwise_adagrad"``: one accumulator per row, :math:`R + R_b` numbers (the bias
        is a table of width one, so each bias row has its own accumulator).

    Hence, with :math:`p` = ``dtype_bytes`` and :math:`q` = ``state_bytes``,

    .. math::

        b = 2 p\,(R f + R_b) + 2 q\, S, \qquad
        S = \begin{cases} 0 & \text{sgd} \\ 2 (R f + R_b) & \text{Adam} \\
        R + R_b & \text{row-wise Adagrad.} \end{cases}

    For :math:`f = 64`, fp32, one negative and a bias: :math:`R f + R_b = 194`, so SGD moves
    :math:`2 \cdot 4 \cdot 194 = 1552` bytes, Adam :math:`1552 + 2 \cdot 4 \cdot 388 = 4656`
    and row-wise Adagrad :math:`1552 + 2 \cdot 4 \cdot 5 = 1592`.

    Parameters
    ----------
    n_factors : int
        :math:`f \ge 1`.
    optimizer : {"sgd", "adam", "sparse_adam", "rowwise_adagrad"}
    dtype_bytes : int
        Bytes per stored weight (4 for fp32, 2 for a bf16 table).
    item_bias : bool
        Whether the model has an item bias.
    n_negatives : int
        Negatives per positive, :math:`n \ge 1`.
    state_bytes : int, optional
        Bytes per optimiser state number; default ``dtype_bytes``. (reclib's bf16 training
        keeps weights and state in fp32 and casts only inside the forward pass, so both are
        4 there.)

    Returns
    -------
    int
        :math:`b` in bytes. Not counted: the index reads, gradient buffers and cache-line
        waste (see the module docstring), so a run moves at least this much.
    """
    f = check_int("n_factors", n_factors, minimum=1)
    check_choice("optimizer", optimizer, set(OPTIMIZER_STATE))
    p = check_int("dtype_bytes", dtype_bytes, minimum=1)
    check_bool("item_bias", item_bias)
    n = check_int("n_negatives", n_negatives, minimum=1)
    q = p if state_bytes is None else check_int("state_bytes", state_bytes, minimum=1)
    rows = 2 + n
    bias_rows = 1 + n if item_bias else 0
    numbers = rows * f + bias_rows                       # read once, written once
    per, kind = OPTIMIZER_STATE[optimizer]
    state = per * numbers if kind == "element" else per * (rows + bias_rows)
    return 2 * p * numbers + 2 * q * state


def ials_sweep_bytes(n_factors: int, n_users: int, n_items: int, n_interactions: int,
                     cg_steps: int = 3, dtype_bytes: int = 4) -> int:
    r"""Bytes one sweep of implicit ALS by conjugate gradient reads and writes, at least.

    A sweep is two halves: the users solved against the items, then the items against the
    users. In a half that solves :math:`n` rows against the :math:`m` rows of the other side,
    with :math:`N` nonzeros and :math:`s` = ``cg_steps`` CG steps, every row's CG needs one
    product :math:`A v` for the start residual and one per step, :math:`s + 1` in all, each
    a pass over the nonzeros (the sparse part) and a dense update of the rows. Counted, in
    numbers of :math:`f` = ``n_factors`` each:

    * per nonzero and pass, the gathered row of the other side, read once (its dot product
      with the row's vector and its scaled sum into the row use the same read): :math:`f`;
    * per row and pass, the row's current vector (:math:`x` at the start, the search
      direction :math:`p` in a step), read for its dot products, and its accumulation (the
      sparse part of :math:`A v`), written by the pass and read back by the dense update:
      :math:`3f`;
    * per row, the dense rows of CG: at the start :math:`x` read and :math:`r, p` written
      (:math:`3f`); in every step :math:`x, r, p` read and written (:math:`6f`);
    * per half, the Gram matrix of the other side reads each of its :math:`m` rows once.

    So a half moves :math:`f\,[(s + 1) N + (9 s + 6)\, n + m]` numbers and a sweep, with
    :math:`p` = ``dtype_bytes``,

    .. math::

        b_{\text{sweep}} = p\, f \left[ 2 (s + 1)\, N + (9 s + 7)\, (|U| + |I|) \right].

    For :math:`f = 64`, fp32, :math:`s = 3`, :math:`N = 900{,}000`, :math:`|U| = 50{,}000`,
    :math:`|I| = 20{,}000`: :math:`256 \cdot (7.2 \cdot 10^6 + 2.38 \cdot 10^6) \approx
    2.45` GB, about 2,720 bytes per interaction.

    Not counted, as in :func:`bytes_per_interaction`: the index reads (the row and column of
    each nonzero), the confidence of each nonzero and the other per-nonzero scalars (the dot
    products and the weights), the :math:`f \times f` Gram matrix itself (it stays in a
    cache) and the objective's bookkeeping; nor the cache-line waste of the gathers. A run
    moves at least this much.

    Parameters
    ----------
    n_factors : int
        :math:`f \ge 1`.
    n_users, n_items : int
        :math:`|U|, |I| \ge 1`.
    n_interactions : int
        :math:`N \ge 1`, the nonzeros of the training matrix.
    cg_steps : int
        :math:`s \ge 1`, CG steps per row and half-sweep.
    dtype_bytes : int
        Bytes per stored number (4 for fp32, 8 for fp64).

    Returns
    -------
    int
        Bytes per sweep; divide by ``n_interactions`` for bytes per interaction.
    """
    f = check_int("n_factors", n_factors, minimum=1)
    n_u = check_int("n_users", n_users, minimum=1)
    n_i = check_int("n_items", n_items, minimum=1)
    nnz = check_int("n_interactions", n_interactions, minimum=1)
    s = check_int("cg_steps", cg_steps, minimum=1)
    p = check_int("dtype_bytes", dtype_bytes, minimum=1)
    return p * f * (2 * (s + 1) * nnz + (9 * s + 7) * (n_u + n_i))


def roofline_fraction(interactions_per_s: float, bytes_per_interaction: float,
                      bandwidth: float) -> float:
    r"""Share of the memory-bandwidth bound a run reaches: :math:`r\,b / B`.

    Parameters
    ----------
    interactions_per_s : float
        Measured throughput :math:`r > 0`.
    bytes_per_interaction : float
        :math:`b > 0` (:func:`bytes_per_interaction`).
    bandwidth : float
        :math:`B > 0` in bytes/s (:func:`measure_bandwidth`).

    Returns
    -------
    float
        In :math:`(0, 1]` for a run limited by the measured memory; above 1 means the
        working set was served (at least partly) from a cache faster than that memory.
    """
    r = check_float("interactions_per_s", interactions_per_s, strictly_positive=True)
    b = check_float("bytes_per_interaction", bytes_per_interaction, strictly_positive=True)
    bw = check_float("bandwidth", bandwidth, strictly_positive=True)
    return r * b / bw


def measure_bandwidth(device: str = "cpu", n_bytes: int = 2**28, repeats: int = 5,
                      kernel: str = "best", n_threads: int | None = None) -> float:
    r"""Achievable memory bandwidth of ``device`` in bytes/s, STREAM-style, on torch tensors.

    Two kernels on float32 arrays of ``n_bytes`` each (McCalpin's STREAM):

    * copy, ``b[:] = a``: :math:`2 N` bytes moved per pass of :math:`N` bytes per array;
    * triad, ``a[:] = b + s c``: :math:`3 N` bytes.

    Each kernel runs once to warm up, then ``repeats`` timed passes; its bandwidth is the
    bytes moved divided by the median pass time. On CUDA each pass is timed with CUDA events
    after a synchronisation, so queued work is never mistaken for finished work. The write
    of the destination is counted once, as STREAM does (a CPU that reads the line before
    writing it moves more, so this is a conservative figure for the machine).

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``. CUDA asked for and absent is an error.
    n_bytes : int
        Size of each array; choose it well above the last-level cache (the default 256 MiB
        is; three arrays are allocated for the triad).
    repeats : int
        Timed passes per kernel (the median is kept).
    kernel : {"copy", "triad", "best"}
        ``"best"`` returns the larger of the two kernels' figures.
    n_threads : int, optional
        Torch CPU threads during the measurement (default: leave torch's setting); use the
        thread count of the runs the bound is compared with.

    Returns
    -------
    float
        Bytes per second.
    """
    import time

    import torch

    n_bytes = check_int("n_bytes", n_bytes, minimum=1024)
    repeats = check_int("repeats", repeats, minimum=1)
    kernel = check_choice("kernel", kernel, {"copy", "triad", "best"})
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device == {device!r} but torch sees no CUDA GPU on this machine; "
                           f"use device='cpu'")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device == {device!r}; measure_bandwidth knows 'cpu' and 'cuda'")
    n = n_bytes // 4
    previous = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(check_int("n_threads", n_threads, minimum=1))
    try:
        a = torch.rand(n, device=dev)
        b = torch.rand(n, device=dev)
        c = torch.rand(n, device=dev)
        ops = {"copy": lambda: b.copy_(a),
               "triad": lambda: torch.add(b, c, alpha=3.0, out=a)}
        figures = {}
        for name in (("copy", "triad") if kernel == "best" else (kernel,)):
            op = ops[name]
            op()                                                  # warm-up
            times = []
            for _ in range(repeats):
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                    start, stop = (torch.cuda.Event(enable_timing=True),
                                   torch.cuda.Event(enable_timing=True))
                    start.record()
                    op()
                    stop.record()
                    stop.synchronize()
                    times.append(start.elapsed_time(stop) / 1e3)
                else:
                    t0 = time.perf_counter()
                    op()
                    times.append(time.perf_counter() - t0)
            seconds = statistics.median(times)
            figures[name] = _KERNEL_ARRAYS[name] * n * 4 / max(seconds, 1e-12)
    finally:
        torch.set_num_threads(previous)
    value = max(figures.values())
    if not math.isfinite(value) or value <= 0:   # pragma: no cover - a broken timer
        raise RuntimeError(f"bandwidth measurement gave {value}; the timer is not usable")
    return float(value)
