"""Forced scenario options shared by tests that need an outcome no packaged scenario produces.

``THIN_LENDERS`` sets every lender kind's capital ratio to 0.05. No packaged scenario fails a lender
in seeds 0-11, so the tests of what happens *after* a lender failure (loss accounting, clearing,
the run figures' failure panels) force one this way. They test the accounting of failures, not that
failures emerge.
"""

from __future__ import annotations

LENDER_KINDS = ("bank", "private_credit", "hy_fund", "crypto_lender", "vendor_finance")

THIN_LENDERS = {f"lenders.kinds.{kind}.capital_ratio": 0.05 for kind in LENDER_KINDS}
