"""The runs admin of the Django example in a real browser: Debian's chromium, headless.

The example runs as its README says (``runserver``, a ``celery worker``,
PostgreSQL). A run fails while the courier's API is "down" (the example's
``courier-down`` file); a superuser logs in, finds it in the run list, opens
its page, sees its graph drawn, clicks *Retry from the failure* and sees the
run succeed. The two pages are photographed: into ``docs/images`` when
``TASKTRONAUT_SCREENSHOTS=docs`` (how the docs' pictures are made), else
into the test's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_modules, unavailable

from .conftest import DJANGO_PROJECT, REPOSITORY, json_request, manage, wait_for_end

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
USER, PASSWORD = "operator", "tasktronaut-operator"
PATIENCE = 60


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless chromium driven by its chromedriver (no browser download: Debian's packages)."""
    require_modules("selenium")
    for program in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(program) is None:
            unavailable(f"{program} is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1680,900")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def superuser(project_env: dict[str, str], django_site: str) -> None:
    """The README's ``createsuperuser``, without its questions."""
    env = {
        **project_env,
        "DJANGO_SUPERUSER_USERNAME": USER,
        "DJANGO_SUPERUSER_PASSWORD": PASSWORD,
        "DJANGO_SUPERUSER_EMAIL": "operator@example.com",
    }
    created = manage(env, "createsuperuser", "--noinput")
    assert created.returncode == 0 or "already taken" in created.stderr, created.stderr


@pytest.fixture
def courier_down() -> Iterator[Path]:
    """The file that takes the courier's API down while it exists; gone after the test."""
    flag = DJANGO_PROJECT / "courier-down"
    try:
        yield flag
    finally:
        flag.unlink(missing_ok=True)


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the pages' pictures go: the docs' images, or the test's own directory."""
    if os.environ.get("TASKTRONAUT_SCREENSHOTS") == "docs":
        return REPOSITORY / "docs" / "images"
    return tmp_path


def fulfil(site: str, order: int, state: str) -> str:
    """Start fulfilling ``order``; its run id, once it has ended in ``state``."""
    status, started = json_request(f"{site}/orders/{order}/fulfil/", method="POST")
    assert status == 202
    run_id = str(started["run_id"])
    ended = wait_for_end(lambda: json_request(f"{site}/runs/{run_id}/")[1])
    assert ended["state"] == state, ended
    return run_id


@pytest.mark.usefixtures("superuser")
def test_retrying_a_failed_run_from_its_admin_page(
    browser: Any, django_site: str, courier_down: Path, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.wait import WebDriverWait

    succeeded_before = fulfil(django_site, 5, "SUCCESS")
    courier_down.touch()
    run_id = fulfil(django_site, 7, "FAILURE")
    courier_down.unlink()  # the courier's API is back
    wait = WebDriverWait(browser, PATIENCE)

    browser.get(f"{django_site}/admin/login/?next=/admin/tasktronaut/runrow/")
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    row = wait.until(
        shown.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"]'))
    )
    assert row.get_attribute("data-state") == "FAILURE"
    assert "FulfilOrder" in row.text
    assert "CourierUnavailableError" in row.text
    listed = browser.find_elements(By.CSS_SELECTOR, "tr.run")
    assert [(r.get_attribute("data-run-id"), r.get_attribute("data-state")) for r in listed][
        :2
    ] == [(run_id, "FAILURE"), (succeeded_before, "SUCCESS")]
    browser.save_screenshot(str(screenshots / "admin-run-list.png"))

    row.find_element(By.LINK_TEXT, run_id).click()
    graph = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, "#run-graph svg")))
    assert graph.size["width"] > 300
    failing = browser.find_elements(By.CSS_SELECTOR, '#run-graph g.step[data-state="FAILURE"]')
    assert [step.get_attribute("data-path") for step in failing] == ["2.1"]
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1680, height + 120)  # the whole page: record, graph and steps
    browser.save_screenshot(str(screenshots / "admin-run.png"))
    browser.set_window_size(1680, 900)

    browser.find_element(By.CSS_SELECTOR, "input[name=retry]").click()
    message = wait.until(shown.visibility_of_element_located((By.CSS_SELECTOR, ".messagelist")))
    assert "is resuming from where it stopped" in message.text

    def succeeded(driver: Any) -> bool:
        driver.refresh()  # the page shows the run as it is when loaded
        state = driver.find_element(By.CSS_SELECTOR, "#run-state").text
        return bool(state == "SUCCESS")

    WebDriverWait(browser, PATIENCE, poll_frequency=0.5).until(succeeded)
    states = {
        step.get_attribute("data-path"): step.get_attribute("data-state")
        for step in browser.find_elements(By.CSS_SELECTOR, "#run-steps tr.step")
    }
    assert set(states.values()) == {"SUCCESS"}
    assert len(states) == 8
    assert "1 time" in browser.find_element(By.ID, "run-record").text  # resumed once
