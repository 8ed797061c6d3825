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
    #: A key column whose rows are indexed when they are added (key -> rows, ascending; negative
    #: keys are not indexed), so that finding a key's rows does not scan the book; None: no index.
    #: A row stays listed under the key it was added with: where a key can change later (only
    #: ever to -1: a lot released, a lease taken over), readers filter by the current column.
    INDEX_BY: str | None = None

    def __init__(self, capacity: int = 64) -> None:
        object.__setattr__(self, "n", 0)
        data = {
            name: np.full(capacity, fill, dtype=dtype)
            for name, (dtype, fill) in self.COLUMNS.items()
        }
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_capacity", capacity)
        object.__setattr__(self, "_index", {})  # INDEX_BY key -> rows added with it, ascending
        self._refresh_views()

    def _refresh_views(self) -> None:
        # live-row views kept as plain attributes: reading a column is a dict lookup (hot path);
        # written straight into the instance dict (what object.__setattr__ does, without a call
        # per column: a book is refreshed after every add)
        n = self.n
        self.__dict__.update({name: array[:n] for name, array in self._data.items()})

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
        end = start + count
        if end > self._capacity:
            self._grow(end)
        data = self._data
        for name, value in columns.items():
            column = data.get(name)
            if column is None:
                raise KeyError(f"{type(self).__name__} has no column {name!r}")
            column[start:end] = value
        self.__dict__["n"] = end
        self._refresh_views()
        rows = np.arange(start, end)
        if self.INDEX_BY is not None:
            key = columns.get(self.INDEX_BY)
            if key is not None:
                _index_rows(self._index, key, rows)
        return rows

    def indexed_rows(self, key: int) -> np.ndarray:
        """Rows added with ``INDEX_BY`` = ``key`` (ascending), without a scan of the book; rows
        whose key has changed since are still listed (filter by the column where it can)."""
        return np.array(self._index.get(int(key), ()), dtype=np.int64)

    def index_problems(self) -> list[str]:
        """Differences between the index and the ``INDEX_BY`` column (empty when none): every row
        with a key >= 0 listed under that key; every listed row's key that key or released (< 0)."""
        if self.INDEX_BY is None:
            return []
        column = getattr(self, self.INDEX_BY)
        listed = [(key, row) for key, rows in self._index.items() for row in rows]
        keys, rows = np.array(listed, dtype=np.int64).reshape(-1, 2).T
        now = column[rows]
        stale = (now != keys) & (now >= 0)
        keyed = np.flatnonzero(column >= 0)
        indexed = np.zeros(self.n, dtype=bool)
        indexed[rows[now == keys]] = True
        missing = keyed[~indexed[keyed]]
        if stale.any() or len(missing):
            return [
                f"the {self.INDEX_BY} index of the {type(self).__name__} does not match its "
                f"column: rows {missing[:10].tolist()} missing, {rows[stale][:10].tolist()} "
                "listed under another key"
            ]
        return []


class PendingRows:
    """Rows bound for one book, collected one at a time and written with a single ``add``.

    ``append`` takes the book's columns as keywords (cells not given take the column's fill
    value); ``columns`` returns the full column arrays, ``flush`` adds them to the book."""

    def __init__(self, book) -> None:
        self.book = book
        self.n = 0
        self._cells: dict[str, tuple[list, list]] = {}  # column -> (row positions, values)

    def append(self, **values) -> None:
        """Collect one row. An optional ``row`` keyword is the book row it will take, counted over
        the rows of :meth:`columns` (other rows may be written there by the caller)."""
        for name, value in values.items():
            cell = self._cells.get(name)
            if cell is None:
                cell = self._cells[name] = ([], [])
            cell[0].append(self.n)
            cell[1].append(value)
        self.n += 1

    def columns(self, n: int | None = None, first_row: int = 0) -> dict[str, np.ndarray]:
        """Every column of the book over ``n`` rows (default: the rows collected), fill values
        where not given; collected rows sit at their ``row`` keyword minus ``first_row`` when given,
        else in collection order."""
        n = self.n if n is None else n
        at = self._cells.pop("row", None)
        pos = np.asarray(at[1], dtype=np.int64) - first_row if at is not None else None
        out = {}
        for name, (dtype, fill) in self.book.COLUMNS.items():
            out[name] = column = np.full(n, fill, dtype=dtype)
            cell = self._cells.get(name)
            if cell is not None:
                rows = np.asarray(cell[0], dtype=np.int64)
                column[rows if pos is None else pos[rows]] = cell[1]
        return out

    def flush(self) -> None:
        """Add the collected rows to the book (nothing when none were collected)."""
        if self.n:
            self.book.add(**self.columns())


def sums_by_key(values: np.ndarray, key: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """``values[key == k].sum()`` for each ``k`` in ``keys`` (a float array aligned with ``keys``),
    bit for bit: each key's rows are summed by NumPy in row order (a stable sort keeps it), without
    a scan of all rows per key (``np.bincount`` would add in another order)."""
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_values = key[order], values[order]
    lo = np.searchsorted(sorted_key, keys, side="left").tolist()
    hi = np.searchsorted(sorted_key, keys, side="right").tolist()
    return np.array([sorted_values[a:b].sum() for a, b in zip(lo, hi, strict=True)], dtype=float)


def _index_rows(index: dict[int, list[int]], keys, rows: np.ndarray) -> None:
    """Append each new row to its key's list in ``index`` (rows ascending); negative keys skipped."""
    get = index.get  # (``setdefault`` would build an empty list for every row)
    for row, key in zip(rows.tolist(), np.broadcast_to(keys, rows.shape).tolist(), strict=True):
        if key >= 0:
            listed = get(key)
            if listed is None:
                index[key] = [row]
            else:
                listed.append(row)
