"""Interactive app on Mesa's SolaraViz: pick a scenario, set key parameters, step or play, and watch
the lending network, prices against fundamental value, and defaults by type.

Run it with ``solara run abm/app.py`` (or :func:`launch`), then open http://127.0.0.1:8765.
It opens on ``correlated_crash`` seed 1, the richest cascade of that scenario's seeds 0-5, so the
first Play shows defaults of miners and neoclouds and fire sales; pick calm (the no-stress
control) or baseline to compare.
Parameters take effect when **Reset** is pressed (Mesa's SolaraViz re-creates the model then).

:class:`AppModel` is :class:`abm.model.AIComputeCreditModel` built from keyword parameters, as
SolaraViz needs; every parameter maps onto a scenario override (``abm.load_scenario(name,
overrides)``). ``None`` (or ``"scenario"`` in the drop-downs) keeps the scenario's own value, so
that picking ``rubin_shock`` keeps its 40 %/yr rent deflation unless you choose another.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import webbrowser
from pathlib import Path
from typing import Any

import solara
from mesa.visualization import Slider, SolaraViz

from abm.config import load_scenario, packaged_scenarios
from abm.model import AIComputeCreditModel
from abm.viz.app_components import (
    DefaultsView,
    NetworkView,
    PricesView,
    SummaryView,
    layout_positions,
)
from abm.vocabulary import CHANNELS

SCENARIO_VALUE = "scenario"  # drop-down choice meaning "keep the scenario's value"
RENT_DEFLATION_CHOICES = [SCENARIO_VALUE, "0.00", "0.10", "0.15", "0.20", "0.30", "0.40", "0.60"]
BUYER_STRESS_CHOICES = [SCENARIO_VALUE, "0.0", "0.2", "0.4", "0.6", "0.8", "1.0", "1.5"]
APP_SCENARIO, APP_SEED = "correlated_crash", 1  # what the app opens on (see the module docstring)


def _absolute(value: Any) -> float | None:
    """A drop-down or keyword value: None/"scenario"/"" -> None (keep the scenario's), else float."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("", SCENARIO_VALUE, "default", "none"):
            return None
        return float(text)
    return float(value)


def app_overrides(
    scenario: str = "baseline",
    *,
    months: int | None = None,
    rent_deflation_per_year: float | str | None = None,
    btc_vol_scale: float = 1.0,
    buyer_stress_budget_multiplier: float | str | None = None,
    origination_ltv_scale: float = 1.0,
    **channels: bool | None,
) -> dict[str, Any]:
    """The dotted-key overrides (for ``load_scenario(scenario, overrides)``) of the app's parameters.

    ``rent_deflation_per_year`` -> ``compute.rent_deflation_per_year``;
    ``btc_vol_scale`` multiplies ``crypto.vol_per_year`` and ``crypto.vol_per_year_stress``;
    ``buyer_stress_budget_multiplier`` -> ``buyers.stress_budget_multiplier`` and
    ``shocks.correlation_model = "regime_set"`` (the rule under which the multiplier acts);
    ``origination_ltv_scale`` multiplies every lender kind's ``origination_ltv`` (kept in [0.05, 1]);
    ``fire_sale=False`` etc. -> ``channels.<name>``; ``months`` -> ``run.months``.
    """
    unknown = set(channels) - set(CHANNELS)
    if unknown:
        raise TypeError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    base = load_scenario(scenario)
    out: dict[str, Any] = {}
    if months is not None:
        out["run.months"] = int(months)
    deflation = _absolute(rent_deflation_per_year)
    if deflation is not None:
        out["compute.rent_deflation_per_year"] = deflation
    if float(btc_vol_scale) != 1.0:
        for key in ("vol_per_year", "vol_per_year_stress"):
            out[f"crypto.{key}"] = min(base["crypto"][key] * float(btc_vol_scale), 5.0)
    stress_budget = _absolute(buyer_stress_budget_multiplier)
    if stress_budget is not None:
        out["buyers.stress_budget_multiplier"] = stress_budget
        # the multiplier is the hand-set stress rule's: choosing it chooses that rule (issue 13)
        out["shocks.correlation_model"] = "regime_set"
    if float(origination_ltv_scale) != 1.0:
        for kind, params in base["lenders"]["kinds"].items():
            ltv = params["origination_ltv"] * float(origination_ltv_scale)
            out[f"lenders.kinds.{kind}.origination_ltv"] = min(max(ltv, 0.05), 1.0)
    for name, on in channels.items():
        if on is not None:
            out[f"channels.{name}"] = bool(on)
    return out


class AppModel(AIComputeCreditModel):
    """The credit model built from keyword parameters (what SolaraViz's Reset passes).

    ``AppModel(scenario="rubin_shock", seed=3, fire_sale=False)`` equals
    ``AIComputeCreditModel(load_scenario("rubin_shock", {"channels.fire_sale": False}), rng=3)``.
    """

    def __init__(
        self,
        scenario: str = APP_SCENARIO,
        seed: int = APP_SEED,
        months: int | None = None,
        rent_deflation_per_year: float | str | None = None,
        btc_vol_scale: float = 1.0,
        buyer_stress_budget_multiplier: float | str | None = None,
        origination_ltv_scale: float = 1.0,
        fire_sale: bool | None = None,
        funding: bool | None = None,
        credit_crunch: bool | None = None,
        margin_calls: bool | None = None,
        counterparty: bool | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = int(seed)
        self.overrides = app_overrides(
            scenario,
            months=months,
            rent_deflation_per_year=rent_deflation_per_year,
            btc_vol_scale=btc_vol_scale,
            buyer_stress_budget_multiplier=buyer_stress_budget_multiplier,
            origination_ltv_scale=origination_ltv_scale,
            fire_sale=fire_sale,
            funding=funding,
            credit_crunch=credit_crunch,
            margin_calls=margin_calls,
            counterparty=counterparty,
        )
        super().__init__(load_scenario(scenario, self.overrides), rng=self.seed)
        self.layout = layout_positions(self)

    def describe(self) -> str:
        """The scenario and the effective values of the app's parameters (Markdown)."""
        cfg = self.cfg
        kinds = cfg["lenders"]["kinds"]
        ltvs = sorted({round(k["origination_ltv"], 2) for k in kinds.values()})
        off = [c.replace("_", " ") for c in CHANNELS if not cfg["channels"][c]]
        buyers = (
            f"buyer stress budget **x{cfg['buyers']['stress_budget_multiplier']:.1f}**"
            if cfg["shocks"]["correlation_model"] == "regime_set"
            else "buyer budgets **follow lender appetite**"
        )
        return (
            f"**{self.scenario}**, seed {self.seed}: {cfg.get('description', '')}\n\n"
            f"rent deflation **{cfg['compute']['rent_deflation_per_year']:.2f}**/yr · "
            f"BTC vol **{cfg['crypto']['vol_per_year']:.2f}** (stress "
            f"{cfg['crypto']['vol_per_year_stress']:.2f}) · {buyers} · origination LTV "
            f"**{ltvs[0]:.2f}-{ltvs[-1]:.2f}** · channels off: **{', '.join(off) or 'none'}**"
        )


# SolaraViz's inputs; each key is an AppModel keyword. Reset applies them.
model_params: dict[str, Any] = {
    "scenario": {
        "type": "Select",
        "value": APP_SCENARIO,
        # the scale tests last; huge_network (100,000 borrowers, minutes a run) is not offered
        "values": [s for s in packaged_scenarios() if s not in ("large_network", "huge_network")]
        + (["large_network"] if "large_network" in packaged_scenarios() else []),
        "label": "Scenario",
    },
    "seed": Slider("Seed", APP_SEED, 0, 99, 1),
    "months": Slider("Months", 60, 12, 120, 6),
    "rent_deflation_per_year": {
        "type": "Select",
        "value": SCENARIO_VALUE,
        "values": RENT_DEFLATION_CHOICES,
        "label": "Rent deflation per year",
    },
    "btc_vol_scale": Slider("BTC volatility x scenario", 1.0, 0.25, 3.0, 0.25),
    "buyer_stress_budget_multiplier": {
        "type": "Select",
        "value": SCENARIO_VALUE,
        "values": BUYER_STRESS_CHOICES,
        "label": "Buyer budget x in stress",
    },
    "origination_ltv_scale": Slider("Lender origination LTV x scenario", 1.0, 0.5, 1.5, 0.05),
    **{
        name: {"type": "Checkbox", "value": True, "label": f"channel: {name.replace('_', ' ')}"}
        for name in CHANNELS
    },
}

components = [
    (NetworkView, 0),
    (PricesView, 0),
    (DefaultsView, 0),
    (SummaryView, 0),
]


@solara.component
def AppPage(model: solara.Reactive | None = None):  # noqa: N802 (Solara components are CamelCase)
    """The app: Mesa's SolaraViz with this model, its parameters and the four views.

    Each browser session gets its own model (a module-level model would be shared by all).
    ``model`` lets a caller (a test) hold the reactive model itself.
    """
    initial = solara.use_memo(lambda: AppModel() if model is None else None, [])
    own = solara.use_reactive(initial)
    reactive = model if model is not None else own
    SolaraViz(
        reactive,
        components=components,
        model_params=model_params,
        name="AI-compute credit contagion",
        play_interval=150,
    )


page = AppPage()


# ----------------------------------------------------------------------------- launching


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def server_command(host: str = "127.0.0.1", port: int = 8765, production: bool = True) -> list[str]:
    """The ``solara run`` command line that serves this app."""
    cmd = [
        sys.executable,
        "-m",
        "solara",
        "run",
        str(Path(__file__).resolve()),
        "--host",
        host,
        "--port",
        str(port),
    ]
    if production:
        cmd.append("--production")
    return cmd


def launch(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False) -> int:
    """Serve the app with ``solara run`` until interrupted; returns the server's exit code.

    With ``open_browser`` the default browser opens the page once the server listens.
    """
    cmd = server_command(host, port)
    url = f"http://{host}:{port}"
    print(f"abm app: serving on {url} (Ctrl+C to stop)", flush=True)
    proc = subprocess.Popen(cmd)
    try:
        if open_browser:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if _port_open(host, port):
                    webbrowser.open(url)
                    break
                time.sleep(0.3)
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
