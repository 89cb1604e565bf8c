"""Run under torchrun with 2 processes: average_gradients on known per-rank gradients.

Rank 0 touches rows 0 and 2 of a sparse table (row 2 twice), rank 1 touches rows 2 and 3;
the dense weight's gradient is rank + 1 on rank r; a second sparse table has a gradient on
rank 0 only. Rank 0 writes what every process ended with, as JSON, to argv[1].
"""

import json
import sys

import torch
import torch.distributed as dist

from reclib.neural import average_gradients

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
module = torch.nn.Module()
module.table = torch.nn.Embedding(5, 2, sparse=True)
module.other = torch.nn.Embedding(3, 2, sparse=True)
module.dense = torch.nn.Linear(2, 1, bias=False)
rows = [[0, 2, 2], [2, 3]][rank]
values = torch.arange(len(rows) * 2, dtype=torch.float32).reshape(-1, 2) + 10 * rank
module.table.weight.grad = torch.sparse_coo_tensor(torch.tensor([rows]), values, (5, 2))
module.dense.weight.grad = torch.full((1, 2), float(rank + 1))
if rank == 0:
    module.other.weight.grad = torch.sparse_coo_tensor(torch.tensor([[1]]),
                                                       torch.tensor([[4.0, 6.0]]), (3, 2))
average_gradients(module, world)
mine = {"table": module.table.weight.grad.to_dense().tolist(),
        "other": module.other.weight.grad.to_dense().tolist(),
        "dense": module.dense.weight.grad.tolist(),
        "table_is_sparse": module.table.weight.grad.is_sparse}
gathered = [None] * world
dist.all_gather_object(gathered, mine)
if rank == 0:
    with open(sys.argv[1], "w") as handle:
        json.dump(gathered, handle)
dist.destroy_process_group()
