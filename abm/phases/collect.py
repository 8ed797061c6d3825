"""Phase 12: collect one time-series row (through Mesa's DataCollector) and one agent-panel slice."""

from __future__ import annotations

import numpy as np

from abm.config import month_label
from abm.finance import impairment, loan_marks
from abm.finance.loan_marks import LOAN_CLASSES

BASE_COLUMNS = (
    "month",
    "date",
    "regime",
    "btc_price",
    "hashprice_usd_per_ph_day",
    "miner_revenue_usd",
    "base_rate",
    "ai_demand_perf_units",
    "gpu_supply_perf_units",
    "utilisation",
    "fire_sale_units",
    "fire_sale_units_cum",
    "defaults_miner",
    "defaults_neocloud",
    "defaults_lender",
    "lender_losses_usd",
    "lender_capital_usd",
    "outside_funder_losses_usd",
    "credit_supply_usd",
    "gpu_units_total",
    "gpu_units_delivered",
    "gpu_units_scrapped",
    "gpu_units_retired",
    "cascade_rounds",
    "min_discount",
    "equity_cures",
    "equity_cure_usd",
    "contract_cuts",
    "contract_renegotiations",
    "rollovers",
    "renegotiated_revenue_usd",
    "paid_compute_perf_units",
    "idle_take_or_pay_perf_units",
    "idle_take_or_pay_usd",
    "contract_usage",
    "spot_utilisation",
    "anchor_distress",
    # loan sales and marks (abm/finance/loan_sales.py, loan_marks.py): principal sold to raise
    # funding, cumulative; lenders' unrealised loan mark-down; each loan class's mark
    "loans_sold_usd_cum",
    "loan_markdown_usd",
    *(f"loan_mark_{c}" for c in LOAN_CLASSES),
    # lenders' unrealised write-down of the seized lots they hold, and realised + that
    "lender_unrealised_inventory_loss_usd",
    "lender_losses_incl_unrealised_usd",
)


def columns(gen_names) -> list[str]:
    cols = list(BASE_COLUMNS)
    for g in gen_names:
        cols += [f"rent_spot_{g}", f"secondary_price_{g}", f"fundamental_value_{g}", f"mark_{g}"]
    return cols


def model_reporters(m) -> dict:
    """DataCollector reporters: each reads the row computed once in :func:`collect`."""
    return {col: (lambda model, c=col: model.current_row[c]) for col in columns(m.gen_names)}


def collect(m, t: int) -> None:
    lenders = m.lender_idx
    parts = m.claims_and_inventory()  # shared by the lender layer's and the agents' balance sheets
    lender_capital_usd = float((m.lender_assets(parts) - m.lender_liabilities()).sum())
    unrealised_usd = impairment.unrealised_loss_usd(m)
    row = {
        "month": t,
        "date": month_label(t, m.start),
        "regime": "stress" if m.shocks.stress else "calm",
        "btc_price": m.crypto.price_usd,
        "hashprice_usd_per_ph_day": m.crypto.hashprice_usd_per_ph_day(),
        "miner_revenue_usd": m.miner_revenue_usd,
        "base_rate": m.base_rate,
        "ai_demand_perf_units": m.compute.demand_perf_units,
        "gpu_supply_perf_units": m.compute.supply_perf_units,
        "utilisation": m.compute.utilisation,
        "fire_sale_units": int(m.this_month.trade_units.sum()),
        "fire_sale_units_cum": int(m.fire_sale_units),
        "defaults_miner": m.defaults["miner"],
        "defaults_neocloud": m.defaults["neocloud"],
        "defaults_lender": m.defaults["lender"],
        "lender_losses_usd": m.lender_losses_usd,
        "lender_capital_usd": lender_capital_usd if len(lenders) else 0.0,
        "outside_funder_losses_usd": m.outside_funder_losses_usd,
        "credit_supply_usd": m.credit_supply_usd,
        "gpu_units_total": int(m.lots.units.sum()),
        "gpu_units_delivered": m.gpu_delivered,
        "gpu_units_scrapped": m.gpu_scrapped,
        "gpu_units_retired": int(m.this_month.retired_units.sum()),
        "cascade_rounds": m.cascade_rounds_used,
        "equity_cures": m.this_month.cures,
        "equity_cure_usd": m.this_month.cure_usd,
        "contract_cuts": m.this_month.contract_cuts,
        "contract_renegotiations": m.this_month.renegotiations,
        "rollovers": m.this_month.rollovers,
        "renegotiated_revenue_usd": m.this_month.renegotiated_usd,
        "paid_compute_perf_units": m.paid_compute_perf_units,
        "idle_take_or_pay_perf_units": m.idle_take_or_pay_perf_units,
        "idle_take_or_pay_usd": m.this_month.idle_take_or_pay_usd,
        "contract_usage": m.contract_usage,
        "spot_utilisation": m.spot_utilisation,
        "anchor_distress": m.this_month.anchor_distress,
        "loans_sold_usd_cum": float(m.funding_state.loans_sold_usd.sum()),
        "loan_markdown_usd": float(loan_marks.markdown_usd(m)[lenders].sum()),
        **{f"loan_mark_{c}": float(m.loan_marks.mark[k]) for k, c in enumerate(LOAN_CLASSES)},
        "lender_unrealised_inventory_loss_usd": unrealised_usd,
        "lender_losses_incl_unrealised_usd": m.lender_losses_usd + unrealised_usd,
        "min_discount": float(np.nanmin(m.this_month.min_discount))
        if np.isfinite(m.this_month.min_discount).any()
        else np.nan,
    }
    for k, g in enumerate(m.gen_names):
        row[f"rent_spot_{g}"] = float(m.compute.rent_spot[k]) if m.release_month[k] <= t else np.nan
        row[f"secondary_price_{g}"] = float(m.this_month.trade_price[k])
        row[f"fundamental_value_{g}"] = (
            float(m.compute.fundamental_value[k]) if m.release_month[k] <= t else np.nan
        )
        row[f"mark_{g}"] = float(m.mark_market[k]) if m.release_month[k] <= t else np.nan
    m.current_row = row

    sheets = m.balance_sheets(parts)
    ltv = m.gpu_ltv()
    cov = m.coverage()
    columns = [
        np.full(m.n, t),
        m.agent_ids,
        m.type,
        m.status,
        m.acct.cash,
        m.gpu_units_by_agent(),
        sheets["btc"],
        sheets["assets"],
        sheets["debt"],
        sheets["equity"],
        ltv,
        np.where(np.isfinite(cov), cov, np.nan),
    ]
    # np.column_stack(columns), filled column by column
    panel = np.empty((m.n, len(columns)), dtype=np.result_type(*columns))
    for j, col in enumerate(columns):
        panel[:, j] = col
    m.panel_rows.append(panel)
