"""The model's shared vocabularies, each defined once: agent types and statuses, event names, default
causes, contagion channels, and the colours every figure uses for them.

Other modules import these names (``abm.events.CAUSES`` and ``abm.analysis.CHANNELS`` are
re-exports); ``tests/test_vocabulary.py`` checks that what the model writes stays inside them and
that every channel, cause and agent type has a colour. This module imports nothing from the package,
so any layer may use it.
"""

from __future__ import annotations

# -------------------------------------------------------------------------------------------- agents

#: Agent types, in the order of their integer codes (``abm.agents.base.MINER`` ... ``BUYER``).
AGENT_TYPES: tuple[str, ...] = ("miner", "neocloud", "lender", "buyer")
#: Types that can default (borrowers) or fail (lenders), in stacking order of the figures.
DEFAULTING_TYPES: tuple[str, ...] = ("miner", "neocloud", "lender")
#: Borrower types (they hold GPU or BTC collateral and borrow from lenders).
BORROWER_TYPES: tuple[str, ...] = ("miner", "neocloud")
#: Agent statuses, in the order of their integer codes (``abm.agents.base.ACTIVE`` ... ``FAILED``).
AGENT_STATUSES: tuple[str, ...] = ("active", "defaulted", "failed")

# ------------------------------------------------------------------------------------ the event log

#: Event names of ``events.csv`` (abm.events.EventLog). Routine events (equity cures, rollovers,
#: contract cuts and renegotiations) are counted in the time series instead of logged.
EVENTS: tuple[str, ...] = (
    "covenant_breach",
    "waiver",
    "acceleration",
    "margin_call",
    "btc_liquidation",
    "refused_rollover",
    "default",
    "seizure",
    "trade",
    "write_off",
    "lease_terminated",
    "conversion_start",
    # finite lender funding (abm/finance/funding.py)
    "redemption",
    "depositor_run",
    "funding_margin_call",
    "loan_sale",
    # loan marks (abm/finance/loan_marks.py): a loan class re-marked in a lender's book
    "loan_mark",
    # miners' ASIC orders (abm/phases/asic_orders.py): an order placed, machines delivered, an order
    # (or its unpaid part) forfeited
    "asic_order",
    "asic_delivery",
    "asic_order_forfeit",
)
#: Causes of a default (column ``cause`` of a ``default`` event; other events may carry one too).
CAUSES: tuple[str, ...] = (
    "payment",
    "ltv",
    "coverage",
    "maturity",
    "margin_call",
    "counterparty",
    "lender_failure",
    # finite lender funding: a lender that cannot pay its depositors, investors or bank, and the
    # causes of runs, redemptions and borrowing-base margin calls
    "illiquidity",
    "btc_fall",
    "losses",
    "borrowing_base",
    "funding_need",
)

# ---------------------------------------------------------------------------------------- contagion

#: Causes that only events other than a default carry (a run, redemption, margin call or loan sale
#: of the finite funding mechanism): no lender or borrower defaults with these causes.
EVENT_ONLY_CAUSES: tuple[str, ...] = ("btc_fall", "losses", "borrowing_base", "funding_need")
#: Causes a ``default`` event can carry (the per-cause default counts of the metrics).
DEFAULT_CAUSES: tuple[str, ...] = tuple(c for c in CAUSES if c not in EVENT_ONLY_CAUSES)

#: Contagion channels: the scenario switches ``channels.<name>`` and the labels of the default
#: genealogy's edges (abm.analysis.cascade_tree).
CHANNELS: tuple[str, ...] = (
    "fire_sale",
    "funding",
    "credit_crunch",
    "margin_calls",
    "counterparty",
)
#: The channel an intermediate event on the way from one default to the next belongs to (the first
#: such event on the way names the channel of the push).
EVENT_CHANNEL: dict[str, str] = {
    "trade": "fire_sale",
    "seizure": "fire_sale",
    "lease_terminated": "counterparty",
    "margin_call": "margin_calls",
    "btc_liquidation": "margin_calls",
    "refused_rollover": "credit_crunch",
    "redemption": "funding",
    "depositor_run": "funding",
    "funding_margin_call": "funding",
    "loan_sale": "funding",
    "loan_mark": "funding",
}

# ------------------------------------------------------------------------------------------ colours

#: Agent types (Okabe-Ito, colourblind-safe).
AGENT_TYPE_COLOURS: dict[str, str] = {
    "miner": "#e69f00",
    "neocloud": "#0072b2",
    "lender": "#009e73",
    "buyer": "#999999",
}
#: Marker shape per agent type (network and genealogy drawings, the app).
AGENT_TYPE_MARKERS: dict[str, str] = {"miner": "s", "neocloud": "o", "lender": "D", "buyer": "^"}
#: Contagion channels (Paul Tol "vibrant"/"muted").
CHANNEL_COLOURS: dict[str, str] = {
    "fire_sale": "#EE7733",
    "funding": "#0077BB",
    "credit_crunch": "#009988",
    "margin_calls": "#EE3377",
    "counterparty": "#332288",
}
#: Default causes (Paul Tol "bright").
CAUSE_COLOURS: dict[str, str] = {
    "payment": "#4477AA",
    "ltv": "#EE6677",
    "coverage": "#228833",
    "maturity": "#CCBB44",
    "margin_call": "#AA3377",
    "counterparty": "#66CCEE",
    "lender_failure": "#000000",
    "illiquidity": "#BBBBBB",
    "btc_fall": "#EE7733",
    "losses": "#882255",
    "borrowing_base": "#44AA99",
    "funding_need": "#DDCC77",
}
