"""Random starting values drawn without float64 copies of the whole matrix."""

from __future__ import annotations

import numpy as np

#: Rows drawn per block: 65,536 rows of 64 float64 values are 32 MB.
BLOCK_ROWS = 65_536


def scaled_normal(rng: np.random.Generator, n_rows: int, n_columns: int, scale: float,
                  dtype=np.float32, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``(rng.standard_normal((n_rows, n_columns)) * scale).astype(dtype)``, number for number.

    The generator's draws are sequential, so drawing the rows in blocks of ``block_rows``
    gives the same values as one call, while the float64 temporary holds one block instead
    of the whole matrix (at 250,000 x 64, 128 MB against 32 MB).
    """
    out = np.empty((n_rows, n_columns), dtype=dtype)
    for start in range(0, n_rows, block_rows):
        stop = min(start + block_rows, n_rows)
        out[start:stop] = rng.standard_normal((stop - start, n_columns)) * scale
    return out
