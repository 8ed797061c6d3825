"""The interactive app (abm/app.py): its model factory, a headless Solara render, and a real browser.

The browser test starts ``solara run abm/app.py`` and drives it with Playwright and the system
Chromium; it is skipped only when Playwright or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("solara")
pytest.importorskip("mesa.visualization")

import ipyvuetify as v  # noqa: E402
import ipywidgets as w  # noqa: E402
import solara  # noqa: E402

from abm import app  # noqa: E402
from abm.app import AppModel, AppPage, app_overrides  # noqa: E402
from abm.config import load_scenario  # noqa: E402
from abm.viz import app_components  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# ----------------------------------------------------------------------------- the model factory


def test_app_model_keeps_scenario_values_unless_set():
    m = AppModel(scenario="rubin_shock", seed=3)
    assert m.cfg["compute"]["rent_deflation_per_year"] == 0.40  # the scenario's, not baseline's
    assert m.overrides == {}
    m = AppModel(
        scenario="rubin_shock",
        seed=3,
        months=24,
        rent_deflation_per_year="0.20",
        buyer_stress_budget_multiplier="scenario",
        btc_vol_scale=2.0,
        origination_ltv_scale=1.5,
        fire_sale=False,
    )
    base = load_scenario("rubin_shock")
    assert m.months == 24
    assert m.cfg["compute"]["rent_deflation_per_year"] == 0.20
    assert m.cfg["buyers"]["stress_budget_multiplier"] == base["buyers"]["stress_budget_multiplier"]
    assert m.cfg["crypto"]["vol_per_year"] == pytest.approx(2 * base["crypto"]["vol_per_year"])
    for kind, params in m.cfg["lenders"]["kinds"].items():
        expected = min(1.5 * base["lenders"]["kinds"][kind]["origination_ltv"], 1.0)
        assert params["origination_ltv"] == pytest.approx(expected)
    assert m.cfg["channels"]["fire_sale"] is False
    assert m.cfg["channels"]["funding"] is True


def test_app_model_matches_the_model_built_directly():
    """Same scenario, overrides and seed: the same path as AIComputeCreditModel."""
    a = AppModel(scenario="correlated_crash", seed=1, months=12, margin_calls=False)
    b = app.AIComputeCreditModel(
        load_scenario(
            "correlated_crash", app_overrides("correlated_crash", months=12, margin_calls=False)
        ),
        rng=1,
    )
    a.run()
    b.run()
    pd.testing.assert_frame_equal(
        a.datacollector.get_model_vars_dataframe(), b.datacollector.get_model_vars_dataframe()
    )


def test_app_overrides_rejects_unknown_parameters():
    with pytest.raises(TypeError, match="no_such_channel"):
        app_overrides("baseline", no_such_channel=False)


def test_figures_draw_before_and_after_steps():
    m = AppModel(scenario="buyer_vacuum", seed=2, months=30)
    for stage in range(2):
        for fig in (
            app_components.network_figure(m, m.layout),
            app_components.prices_figure(m),
            app_components.prices_figure(m, "B200"),
            app_components.defaults_figure(m),
        ):
            assert app_components.figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
        if stage == 0:
            assert "Month 0 / 30" in app_components.summary_markdown(m)
            m.run()
    assert "Month 30 / 30" in app_components.summary_markdown(m)
    counts = app_components.state_counts(m)
    assert sum(sum(c.values()) for c in counts.values()) == m.n
    gone = sum(c["defaulted"] + c["failed"] for c in counts.values())
    assert gone == int((m.status != 0).sum()) > 0  # buyer_vacuum seed 2 has defaults by month 30


# ----------------------------------------------------------------------------- headless Solara


def _render(element):
    # the sidebar (controls, parameters) is a portal that only an AppLayout displays
    return solara.render(solara.AppLayout(children=[element]), handle_error=False)


def _images(rc) -> dict[str, bytes]:
    out = {}
    for img in rc.find(w.Image).widgets:
        for cls in img._dom_classes:
            if cls.startswith("abm-"):
                out[cls] = img.value
    return out


def test_page_steps_the_model_and_redraws():
    model = solara.reactive(AppModel(scenario="correlated_crash", seed=0))
    box, rc = _render(AppPage(model=model))
    before = _images(rc)
    assert set(before) == {"abm-network", "abm-prices", "abm-defaults"}
    rc.find(v.Html, children=["Step: 0"]).assert_single()
    step = rc.find(v.Btn, children=["Step"])
    step.assert_single()
    step.widget.click()
    assert model.value.steps == 1
    rc.find(v.Html, children=["Step: 1"]).assert_single()
    after = _images(rc)
    assert after["abm-network"] != before["abm-network"]  # the title now names month 1
    assert after["abm-prices"] != before["abm-prices"]  # the first data point
    step.widget.click()
    assert model.value.steps == 2
    assert len(model.value.datacollector.get_model_vars_dataframe()) == 2
    assert not rc.find(v.Alert).widgets  # no error shown


def test_reset_applies_the_parameters():
    model = solara.reactive(AppModel())
    box, rc = _render(AppPage(model=model))
    rc.find(v.Select, label="Scenario").widget.v_model = "rubin_shock"
    rc.find(v.Checkbox, label="channel: fire sale").widget.v_model = False
    rc.find(v.Btn, children=["Step"]).widget.click()
    assert model.value.steps == 1
    rc.find(v.Btn, children=["Reset"]).widget.click()
    new = model.value
    assert isinstance(new, AppModel)
    assert new.steps == 0
    assert new.scenario == "rubin_shock"
    assert new.cfg["channels"]["fire_sale"] is False
    assert new.cfg["compute"]["rent_deflation_per_year"] == 0.40
    rc.find(v.Html, children=["Step: 0"]).assert_single()


def test_module_level_page_renders_with_its_own_model():
    box, rc = _render(app.page)
    rc.find(v.Btn, children=["Step"]).widget.click()
    rc.find(v.Html, children=["Step: 1"]).assert_single()


# ----------------------------------------------------------------------------- a real browser


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"solara exited early with code {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"solara did not listen on port {port} within {timeout} s")


@pytest.mark.slow
@pytest.mark.browser
def test_browser_step_changes_the_picture(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is missing (pip install playwright)"
    )
    port = _free_port()
    log_path = tmp_path / "solara.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            app.server_command("127.0.0.1", port, production=True),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
            cwd=str(Path(app.__file__).resolve().parent.parent),
        )
    try:
        try:
            _wait_for_port(port, proc, timeout=45)
            before, after, text = _drive_browser(sync_api, port, tmp_path / "app.png")
        except Exception as exc:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}\n--- solara log (tail) ---\n{tail}") from exc
        assert before != after, "the network picture did not change after Step"
        for bad in ("Traceback", "error in step", "Error:"):
            assert bad not in text, f"{bad!r} on the page:\n{text[:2000]}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _drive_browser(sync_api, port: int, shot: Path) -> tuple[bytes, bytes, str]:
    """Load the app, screenshot the network, press Step, wait for month 1, screenshot again."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded")
            network = page.locator("img.abm-network")
            network.wait_for(state="visible")
            page.get_by_text("Month 0 / 60").wait_for()
            before = network.screenshot()
            before_src = network.get_attribute("src")
            page.get_by_role("button", name="Step").click()
            page.get_by_text("Month 1 / 60").wait_for()
            page.get_by_text("Step: 1").wait_for()
            page.wait_for_function(
                "src => document.querySelector('img.abm-network').src !== src", arg=before_src
            )
            after = network.screenshot()
            page.screenshot(path=str(shot))
            return before, after, page.inner_text("body")
        finally:
            browser.close()


def test_launch_runs_solara(monkeypatch):
    """launch() runs `solara run abm/app.py` and returns its exit code."""
    calls = []

    class FakeProc:
        def __init__(self, cmd):
            calls.append(cmd)

        def wait(self, timeout=None):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(app.subprocess, "Popen", FakeProc)
    assert app.launch(port=9999) == 0
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "solara", "run"]
    assert cmd[4].endswith(os.path.join("abm", "app.py"))
    assert cmd[cmd.index("--port") + 1] == "9999"
