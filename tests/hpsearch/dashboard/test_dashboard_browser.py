"""`hpsearch dashboard` in a real headless browser: the study list, a study's page and its
trial table render from a finished search, with no error in the browser console.

Needs Debian's Chromium (`apt-get install -y --no-install-recommends chromium`) and the
`playwright` Python package (the `dev` extra). Playwright's own browser download
(`playwright install`) is not used: the test drives /usr/bin/chromium, offline. Without
either, the test skips, or fails when `CI` is set. A full-page screenshot of the study's
trial table is written to test-artifacts/dashboard-study.png.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.testing import ROOT, create_args, hpsearch, run_workers

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# No sandbox (containers, root), no GPU, and nothing that reaches for the network on its own:
# the machines that run this have no internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STUDIES = ("capacity-rnn-p300", "capacity-gru-p300")
TRIALS = 3
TIMEOUT_MS = 30_000


def _missing(reason: str) -> None:
    """CI must run this test; elsewhere a missing browser is a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this test must run)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_http(url: str, process: subprocess.Popen[bytes], log: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while True:
        if process.poll() is not None:
            pytest.fail(f"dashboard exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no answer from {url} in {wait:.0f} s:\n{log.read_text()}")
        time.sleep(0.25)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_dashboard_in_a_browser(sqlite_url: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("playwright") is None:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"{CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium)")
    from playwright.sync_api import ConsoleMessage, expect, sync_playwright

    created = hpsearch(
        *create_args(sqlite_url, TRIALS, "--seed", "0", "--space", "max_steps=20", archs="rnn,gru")
    )
    assert created.returncode == 0, created.stderr
    run_workers(sqlite_url, 1)
    study = optuna.load_study(study_name=STUDIES[0], storage=sqlite_url)
    expected = {t.number: t.value for t in study.trials}
    assert len(expected) == TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "dashboard.log"
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console error: {message.text} at {message.location}")

    with log.open("wb") as log_file:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hpsearch.cli",
                "dashboard",
                "--storage",
                sqlite_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
    try:
        _wait_for_http(base + "/", server, log, 30)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(TIMEOUT_MS)
                page.on("console", on_console)
                page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

                # The study list: / redirects to /dashboard, which lists every study.
                page.goto(base + "/")
                for name in STUDIES:
                    expect(
                        page.get_by_role("link", name=re.compile(re.escape(name)))
                    ).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "dashboard-studies.png"), full_page=True)

                # A study's page: /dashboard/studies/<study id>, titled "<name> (id=<id>)".
                page.get_by_role("link", name=re.compile(re.escape(STUDIES[0]))).click()
                expect(page).to_have_url(f"{base}/dashboard/studies/{study._study_id}")
                expect(page.get_by_text(f"{STUDIES[0]} (id={study._study_id})")).to_be_visible()
                best = page.get_by_text(f"Best Trial (number={study.best_trial.number})")
                expect(best).to_be_visible()
                # hpsearch's figure sits beside Optuna's own plots on the study's page ...
                title = page.locator("svg text.gtitle").filter(
                    has_text="Best bits against parameters"
                )
                expect(title).to_have_count(1, timeout=15_000)
                # ... and its note, kept current by the worker, on the study's Note page,
                # with the current best in bits per parameter.
                page.get_by_role("link", name="Note").click()
                expect(page).to_have_url(f"{base}/dashboard/studies/{study._study_id}/note")
                bpp = study.best_trial.user_attrs["bits_per_param"]
                expect(
                    page.get_by_text("per-parameter capacity", exact=False).first
                ).to_be_visible()
                expect(page.get_by_text(f"{bpp:.3f} bits/param", exact=False).first).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / "dashboard-note.png"), full_page=True)
                page.go_back()

                # The trial table. optuna-dashboard up to 0.19 has a "Trials (Table)" page; in
                # 0.20+ its route (/trialTable) still exists but renders nothing, and the table
                # lives under "Smart Selection" (parallel coordinates, history, then the table).
                table_link = page.get_by_role("link", name="Trials (Table)")
                if table_link.count() == 0:
                    table_link = page.get_by_role("link", name="Smart Selection")
                table_link.click()
                expect(page).to_have_url(
                    re.compile(
                        rf"/dashboard/studies/{study._study_id}/(trialTable|smartSelection)$"
                    )
                )
                table = page.locator("table").filter(
                    has=page.get_by_role("columnheader", name=re.compile(r"^Number"))
                )
                expect(table).to_have_count(1)
                rows = table.locator("tbody tr")
                expect(rows).to_have_count(TRIALS)
                headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
                number_col = next(i for i, h in enumerate(headers) if h.startswith("Number"))
                state_col = next(i for i, h in enumerate(headers) if h.startswith("State"))
                value_col = next(i for i, h in enumerate(headers) if h.startswith("Value"))
                shown = {}
                for row in rows.all():
                    cells = [c.strip() for c in row.locator("td").all_inner_texts()]
                    assert cells[state_col] == "Complete", cells
                    shown[int(cells[number_col])] = _float_or_none(cells[value_col])
                assert shown.keys() == expected.keys()
                for number, value in expected.items():
                    assert shown[number] == pytest.approx(value, rel=1e-9), (number, shown)

                # Let the plots draw before the screenshot (the table is already there).
                expect(page.locator(".js-plotly-plot").first).to_be_visible()
                page.wait_for_timeout(500)
                page.screenshot(path=str(ARTIFACTS / "dashboard-study.png"), full_page=True)
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert errors == [], "\n".join(errors)
