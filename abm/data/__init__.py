"""Packaged historical data (read with :mod:`importlib.resources`).

* ``asic_2022_monthly.csv``: the 2021-22 ASIC crisis, monthly 2021-11 .. 2023-12 (BTC month-end close,
  network hashrate, hashprice, miners' revenue, the ASIC price index by efficiency tier);
* ``asic_2022_episode.csv``: the episode's dated facts (defaults, seizures, auctions, the loan book).

Columns, units and sources: :mod:`abm.backtest` and docs/validation.md (section "Backtest: the
2021-22 ASIC crisis").
"""
