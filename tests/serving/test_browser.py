"""The web form in a real headless Chromium (Playwright): fill in, submit, read the result."""

import os
import re
import shutil

import pytest
from playwright import sync_api as playwright_api

from credit_risk.scoring import bands
from serving import create_app
from tests.serving.servers import in_thread

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def base_url(trained):
    with in_thread(create_app(trained[0], watch=False)) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):  # a missing install step is a failure, not a skip
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def test_fill_in_submit_and_read_the_result(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    assert page.locator("label[for=income]").inner_text().startswith("Annual income")
    assert "(INR)" in page.locator("label[for=income]").inner_text()
    assert page.input_value("#age") == "35"  # defaults filled in
    page.fill("#age", "29")
    page.select_option("#loan_purpose", "Personal")
    page.fill("#credit_utilization_ratio", "85")
    page.fill("#delinquent_months", "12")
    page.fill("#total_dpd", "240")
    page.click("#submit")
    page.wait_for_selector("#result")
    pd_text = page.inner_text("#pd")
    assert re.fullmatch(r"\d{1,3}\.\d\d%", pd_text)
    score = int(page.inner_text("#score"))
    assert 300 <= score <= 900
    assert page.inner_text("#rating") in bands.NAMES
    assert page.inner_text("#risk") in ("High", "Low")
    assert page.locator("#gauge svg path").count() == len(bands.BANDS)
    assert page.locator("#bands li.current").inner_text().startswith(page.inner_text("#rating"))
    assert page.locator("#reasons").is_visible()
    assert page.input_value("#credit_utilization_ratio") == "85"  # the values stay
    page.close()


def test_invalid_submission_shows_the_field_error_in_the_browser(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    page.fill("#age", "12")
    page.fill("#income", "")  # nullable: allowed empty
    page.fill("#loan_tenure_months", "36.5")
    page.click("#submit")
    assert page.inner_text("#age-error") == "must be at least 18"
    assert page.inner_text("#loan_tenure_months-error") == "must be a whole number"
    assert page.inner_text("#income-error") == ""
    assert page.get_attribute("#age", "aria-invalid") == "true"
    assert page.locator("#result").count() == 0  # not submitted
    page.fill("#age", "40")
    page.fill("#loan_tenure_months", "36")
    page.click("#submit")
    page.wait_for_selector("#result")
    page.close()


def test_server_validation_without_javascript(browser, base_url):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(base_url + "/")
    page.fill("#age", "150")
    page.click("#submit")
    page.wait_for_selector("#form-error")
    assert page.inner_text("#age-error") == "must be at most 100"
    assert page.locator("#result").count() == 0
    context.close()


def test_usable_on_a_phone(browser, base_url):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    page.goto(base_url + "/")
    page.tap("#submit")
    page.wait_for_selector("#result")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # no sideways scrolling
    box = page.locator("#age").bounding_box()
    assert box and box["width"] > 300 and box["height"] >= 30  # full-width, tappable inputs
    context.close()
