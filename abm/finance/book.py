"""The struct-of-arrays table every instrument book is built on (:class:`Book`).

A book stores one record per row in NumPy columns, so that monthly bookkeeping runs vectorised over
all records. A record is never deleted, only its status changes, so row indices stay stable.
"""

from __future__ import annotations

import numpy as np

_SCALARS = (int, float, bool, np.generic)


class Book:
    """A growable table of NumPy columns. ``book.col`` is a view of the live rows of column ``col``."""

    COLUMNS: dict[str, tuple[type, object]] = {}

    def __init__(self, capacity: int = 64) -> None:
        object.__setattr__(self, "n", 0)
        data = {
            name: np.full(capacity, fill, dtype=dtype)
            for name, (dtype, fill) in self.COLUMNS.items()
        }
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_capacity", capacity)
        self._refresh_views()

    def _refresh_views(self) -> None:
        # live-row views kept as plain attributes: reading a column is a dict lookup (hot path)
        for name, array in self._data.items():
            object.__setattr__(self, name, array[: self.n])

    def __setattr__(self, name: str, value) -> None:
        if name in self._data:  # ``book.col = values`` writes into the live rows
            self._data[name][: self.n] = value
        else:
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return self.n

    def _grow(self, needed: int) -> None:
        cap = self._capacity
        while cap < needed:
            cap *= 2
        if cap == self._capacity:
            return
        for name, (dtype, fill) in self.COLUMNS.items():
            old = self._data[name]
            new = np.full(cap, fill, dtype=dtype)
            new[: self.n] = old[: self.n]
            self._data[name] = new
        object.__setattr__(self, "_capacity", cap)

    def add(self, **columns) -> np.ndarray:
        """Append rows; every keyword is a column (scalars broadcast). Returns the new row indices."""
        # the longest array column sets the row count (scalars broadcast; scalars only: one row)
        count = -1
        for v in columns.values():
            if type(v) is np.ndarray:  # the common case, without np.size / np.ndim dispatch
                if v.ndim > 0 and v.size > count:
                    count = v.size
            elif not isinstance(v, _SCALARS) and np.ndim(v) > 0 and np.size(v) > count:
                count = np.size(v)
        if count < 0:
            count = 1
        start = self.n
        self._grow(start + count)
        for name, value in columns.items():
            if name not in self._data:
                raise KeyError(f"{type(self).__name__} has no column {name!r}")
            self._data[name][start : start + count] = value
        object.__setattr__(self, "n", start + count)
        self._refresh_views()
        return np.arange(start, start + count)


def _index_rows(index: dict[int, list[int]], keys, rows: np.ndarray) -> None:
    """Append each new row to its key's list in ``index`` (rows ascending); negative keys skipped."""
    for row, key in zip(rows.tolist(), np.broadcast_to(keys, rows.shape).tolist(), strict=True):
        if key >= 0:
            index.setdefault(key, []).append(row)
