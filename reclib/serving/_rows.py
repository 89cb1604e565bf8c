"""A row matrix that grows in place: appending k rows to n costs O(k) amortised, not O(n)."""

from __future__ import annotations

import numpy as np


class GrowingRows:
    """float32 rows in a buffer with spare capacity; :attr:`view` is the filled part.

    When an append does not fit, the buffer is reallocated with room for
    :math:`\\max(k, n / 8, 1024)` more rows, so a stream of single-row appends copies the
    matrix once per :math:`n / 8` appends (amortised :math:`O(8 d)` per row) instead of once
    per append, and the spare memory stays under an eighth of the matrix.

    Parameters
    ----------
    rows : array-like of shape (n, d)
        The initial rows; taken without a copy when already C-contiguous float32.
    """

    def __init__(self, rows):
        self._buffer = np.ascontiguousarray(rows, dtype=np.float32)
        if self._buffer.ndim != 2:
            raise ValueError(f"rows must be 2-D, got shape {self._buffer.shape}")
        self._n = self._buffer.shape[0]

    @property
    def view(self) -> np.ndarray:
        """The ``(n, d)`` rows written so far (a view of the buffer, C-contiguous)."""
        return self._buffer[:self._n]

    @property
    def capacity(self) -> int:
        return self._buffer.shape[0]

    def append(self, rows) -> np.ndarray:
        """Write ``rows`` (k, d) after the last row; returns the new :attr:`view`."""
        rows = np.asarray(rows, dtype=np.float32)
        d = self._buffer.shape[1]
        if rows.ndim != 2 or rows.shape[1] != d:
            raise ValueError(f"rows must have shape (k, {d}), got {rows.shape}")
        k = rows.shape[0]
        if self._n + k > self.capacity:
            grown = np.empty((self._n + max(k, self._n // 8, 1024), d), dtype=np.float32)
            grown[:self._n] = self._buffer[:self._n]
            self._buffer = grown
        self._buffer[self._n:self._n + k] = rows
        self._n += k
        return self.view
