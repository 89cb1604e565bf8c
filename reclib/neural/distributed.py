r"""Data-parallel training of reclib's PyTorch models, launched by ``torchrun``.

Nothing here changes a model: inside a ``torch.distributed`` process group, every
process draws the same global batch from the same seed and trains on its
:func:`~reclib.neural.shard_batch` share, and :class:`~reclib.neural.Trainer` averages the
gradients over the :math:`P` processes before each step (through
:class:`~torch.nn.parallel.DistributedDataParallel` for dense models, by
:func:`~reclib.neural.average_gradients` for models with sparse embedding tables):

.. math::

    g = \frac{1}{P} \sum_{p=1}^{P} \nabla_\Theta \frac{1}{|B_p|} \sum_{b \in B_p} \ell_b
      \;\approx\; \nabla_\Theta \frac{1}{|B|} \sum_{b \in B} \ell_b ,

with equality when the shards have equal sizes. So the processes hold the same weights at
every step, and the run is the single-process run of the same global batch size up to the
order of floating-point sums. What travels is one gradient per parameter per step: for an
embedding table the whole :math:`n \times f` table (dense) or the rows of the batch
(``sparse=True``), which is why embedding-heavy models scale poorly this way (chapter 9).

Command line (2 CPU processes over gloo; on GPUs use ``--nproc_per_node`` = the number of
GPUs and ``--device cuda``, which selects nccl)::

    torchrun --standalone --nproc_per_node 2 -m reclib.neural.distributed \
        --model BPRMF --params '{"n_epochs": 20}' --out ddp.json

Rank 0 evaluates the fitted model on the test part (nDCG@10 and the other top-10 metrics
of :func:`reclib.evaluation.evaluate_ranking`) and writes a JSON record; every rank checks
that its weights equal rank 0's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

#: Models the command line trains (any NeuralRecommender works from Python).
MODELS = ("BPRMF", "TwoTower", "GMF")
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def init_process_group(device: str = "cpu") -> tuple[int, int]:
    """Join the process group ``torchrun`` describes; return ``(rank, world_size)``.

    The backend is nccl for ``device="cuda"`` and gloo otherwise. Raises a ``RuntimeError``
    naming the missing variables when the process was not started by ``torchrun``.
    """
    missing = [name for name in _ENV if name not in os.environ]
    if missing:
        raise RuntimeError(f"the environment lacks {missing}: start this with torchrun, e.g. "
                           f"torchrun --standalone --nproc_per_node 2 -m "
                           f"reclib.neural.distributed ...")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device == {device!r}, must be 'cpu' or 'cuda'")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device == 'cuda' but torch sees no CUDA GPU on this machine")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def weights_spread(model) -> float:
    """Largest absolute difference between this process's weights and rank 0's."""
    worst = torch.zeros(())
    for value in model.weights_.values():
        mine = torch.as_tensor(np.asarray(value, dtype=np.float64))
        reference = mine.clone()
        dist.broadcast(reference, src=0)
        worst = torch.maximum(worst, (mine - reference).abs().max())
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst)


def load_split(data: str, seed: int = 42):
    """The train/test parts the command line fits and scores.

    ``"ml-100k"``: MovieLens 100K with the book's top-N split (stratified 75/25, seed 42).
    ``"synthetic:N"``: ``N`` power-law interactions
    (:func:`reclib.datasets.synthetic.synthetic_interactions`, ``N/20`` users, ``N/50``
    items), split the same way.
    """
    from ..datasets import load_movielens
    from ..datasets.synthetic import synthetic_interactions
    from ..split import stratified_split

    if data == "ml-100k":
        frame = load_movielens("100k")
    elif data.startswith("synthetic:"):
        n = int(float(data.split(":", 1)[1]))
        frame = synthetic_interactions(max(n // 20, 2), max(n // 50, 2), n, seed=seed)
    else:
        raise ValueError(f"data == {data!r}, must be 'ml-100k' or 'synthetic:<n>'")
    return stratified_split(frame, ratio=0.75, seed=seed)


def build_model(name: str, params: dict):
    """A fresh ``reclib.neural`` model of class ``name`` with ``params``."""
    from .. import neural

    if name not in MODELS:
        raise ValueError(f"model == {name!r}, must be one of {list(MODELS)}")
    return getattr(neural, name)(**params)


def run(model_name: str, params: dict, data: str = "ml-100k", device: str = "cpu") -> dict:
    """Fit and evaluate one model, in a process group when there is one; return the record."""
    from ..evaluation import evaluate_ranking

    distributed = "WORLD_SIZE" in os.environ
    rank, world = init_process_group(device) if distributed else (0, 1)
    train, test = load_split(data)
    model = build_model(model_name, {**params, "device": device})
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    spread = weights_spread(model) if distributed else 0.0
    record = {"model": model_name, "params": model.get_params(), "data": data,
              "world_size": world, "backend": dist.get_backend() if distributed else None,
              "fit_s": fit_s, "loss_history": model.loss_history_.tolist(),
              "max_weight_difference_across_processes": spread}
    if rank == 0:
        record.update(evaluate_ranking(model, train, test, k=10))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Fit a reclib.neural model, data-parallel "
                                                 "under torchrun, and score it")
    parser.add_argument("--model", default="BPRMF", choices=MODELS)
    parser.add_argument("--params", default="{}", help="constructor arguments as JSON")
    parser.add_argument("--data", default="ml-100k", help="'ml-100k' or 'synthetic:<n>'")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--out", type=Path, default=None, help="JSON record (rank 0 writes)")
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as err:
        parser.error(f"--params is not JSON ({err}): {args.params!r}")
    if not isinstance(params, dict):
        parser.error(f"--params must be a JSON object, got {args.params!r}")
    record = run(args.model, params, args.data, args.device)
    if int(os.environ.get("RANK", "0")) == 0:
        text = json.dumps(record, indent=2, default=float)
        if args.out is None:
            print(text)
        else:
            args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
