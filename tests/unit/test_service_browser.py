"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` + ``chromium-driver``) via Selenium.

Against a live ``uvicorn`` server on the loopback: a request is submitted through the API and processed,
then the browser logs in, opens the queue and the request's page, and checks what was rendered: the
request shows as done and its certificate verifies. Screenshots are saved as test artifacts in
``$R2U_TEST_ARTIFACTS`` (default ``test-artifacts/`` at the repository root).

Skips, saying what is missing, when Chromium, its driver or Selenium is not installed
(``apt-get install chromium chromium-driver``; ``pip install selenium``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("headless Chromium is not installed (apt-get install chromium chromium-driver): dashboard browser "
                "test skipped", allow_module_level=True)  # fmt: skip
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from selenium.webdriver.common.by import By  # noqa: E402

from ready2unlearn.ledger.store import Ledger  # noqa: E402
from ready2unlearn.service.app import create_app  # noqa: E402
from ready2unlearn.service.config import ServiceConfig  # noqa: E402

ARTIFACTS = Path(os.environ.get("R2U_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(digits_ckpt, tmp_path):
    """A bound ledger, two tokens and a uvicorn server on a free loopback port (stopped afterwards)."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as led:
        led.bind(digits_ckpt)
        submitter = led.tokens.add("portal", "submitter")[1]
        operator = led.tokens.add("ops", "operator")[1]
        auditor = led.tokens.add("dpo", "auditor")[1]
    port = _free_port()
    app = create_app(ServiceConfig(ledger=str(path), port=port, worker_args=["--method", "ga", "--stop", "steps:5"]))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield base, {"submitter": submitter, "operator": operator, "auditor": auditor}
    server.should_exit = True
    thread.join(timeout=30)


def _browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # Flags a locked-down, offline machine needs: no sandbox as root, no GPU, and no background calls home
    # (they are refused here, many at a time, and slow the start down).
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic", "--window-size=1280,2400"):  # fmt: skip
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=DRIVER))


def test_dashboard_shows_the_served_request_and_its_verified_certificate(live):
    base, tokens = live
    auth = {"Authorization": f"Bearer {tokens['submitter']}"}
    body = {"kind": "class", "target": "3", "reason": "GDPR art. 17", "submitter": "user 88"}
    r = httpx.post(f"{base}/api/v1/requests", headers=auth, json=body)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    trig = httpx.post(f"{base}/api/v1/process", headers={"Authorization": f"Bearer {tokens['operator']}"})
    assert trig.status_code == 202
    deadline = time.time() + 180
    while time.time() < deadline:
        status = httpx.get(f"{base}/api/v1/requests/{rid}", headers=auth).json()["status"]
        if status in ("done", "failed"):
            break
        time.sleep(0.5)
    assert status == "done"

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = _browser()
    try:
        browser.set_page_load_timeout(60)
        # A click returns before the page it leads to has loaded: every lookup waits for its element.
        browser.implicitly_wait(30)
        browser.get(f"{base}/requests/{rid}")  # not logged in: sent to the login form
        assert browser.current_url.endswith("/login")
        browser.find_element(By.ID, "token").send_keys(tokens["auditor"])
        browser.find_element(By.ID, "login").click()
        row = browser.find_element(By.ID, f"request-{rid}")
        assert "done" in row.text and "user 88" in row.text
        assert browser.find_element(By.ID, "count-done").text == "1"
        browser.save_screenshot(str(ARTIFACTS / "dashboard-queue.png"))
        row.find_element(By.LINK_TEXT, str(rid)).click()
        assert browser.find_element(By.ID, "status").text == "done"
        assert browser.find_element(By.ID, "verified").text == "verified"
        checks = browser.find_element(By.ID, "checks").text
        assert "failed" not in checks and "certificate sha256" in checks
        assert browser.find_elements(By.CSS_SELECTOR, ".plots svg"), "the certificate's plots were not rendered"
        assert "claimed" in browser.find_element(By.ID, "timeline").text
        browser.save_screenshot(str(ARTIFACTS / "dashboard-request.png"))
        browser.get(f"{base}/lineage")
        chain = browser.find_elements(By.CSS_SELECTOR, "#lineage li")
        assert len(chain) == 2 and f"request #{rid}" in chain[-1].text and "served" in chain[-1].text
        browser.save_screenshot(str(ARTIFACTS / "dashboard-lineage.png"))
    finally:
        browser.quit()
    assert (ARTIFACTS / "dashboard-request.png").stat().st_size > 10_000
