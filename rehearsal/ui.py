"""The Airflow UI as a person sees it: a real headless Chromium signs in on the api-server's login page
(FAB auth manager) and reads what the React UI renders, with no REST call of its own.

The browser is Debian's chromium package (scripts/setup-machine.sh installs it); playwright only drives
it through `executable_path`, so no browser build is ever downloaded (`playwright install` is never run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Locator, Page, expect, sync_playwright

from rehearsal.services import SETUP_HINT, MissingPrerequisite

CHROMIUM = Path("/usr/bin/chromium")
# The api-server renders the React bundle and its translations on a loaded 2-core machine: tens of seconds.
TIMEOUT_MS = 90_000
VIEWPORT = {"width": 1280, "height": 560}


class UiError(RuntimeError):
    pass


def require_chromium() -> None:
    if not CHROMIUM.is_file():
        raise MissingPrerequisite(
            f"{CHROMIUM} is missing (the UI check drives Debian's Chromium): apt-get install chromium, or {SETUP_HINT}"
        )


@contextmanager
def signed_in(base_url: str, username: str, password: str, path: str = "/") -> Iterator[Page]:
    """A browser page at `path`, signed in through the login form a person is sent to; closed on exit."""
    require_chromium()
    base_url = base_url.rstrip("/")
    with sync_playwright() as playwright:
        # Chromium refuses to start its sandbox as root ("Running as root without --no-sandbox is not
        # supported"), and the tests and CI run as root. The only page it opens is the rehearsal's own
        # api-server on loopback.
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), chromium_sandbox=False)
        try:
            page = browser.new_page(viewport=VIEWPORT, base_url=base_url)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(path)
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password").fill(password)
            # The form's POST ends on `path` when the login is accepted, on the login page again when not.
            with page.expect_navigation():
                page.get_by_role("button", name="Sign In").click()
            if "/auth/login" in page.url:
                # FAB's flash message, without its close button's "×".
                alert = " ".join(page.locator(".alert").all_inner_texts()).replace("×", " ").split()
                raise UiError(
                    f"the UI did not let {username} in at {base_url}/auth/login: "
                    f"{' '.join(alert) or 'no message shown'}"
                )
            yield page
        finally:
            browser.close()


# The navigation below clicks as a person does: the single-page app changes views without reloading its
# bundle, which a page.goto would parse again (seconds each on a loaded 2-core machine).
def open_dag_runs_tab(page: Page, dag_name: str) -> None:
    """From the Dags list: the DAG by the name it shows, then its Runs tab."""
    page.get_by_role("link", name=re.compile(rf"^{re.escape(dag_name)}\b")).first.click()
    page.get_by_role("link", name="Runs", exact=True).click()


def open_all_dag_runs(page: Page) -> None:
    """Dags (the navigation bar) > Dag Runs (the tab beside the Dags list): the runs of every DAG."""
    page.get_by_role("link", name="Dags", exact=True).first.click()  # the navigation bar comes first
    page.get_by_role("link", name="Dag Runs", exact=True).click()


def cell(page: Page, run_id: str, column: str) -> Locator:
    """The cell under the column headed `column` in the table row whose run-id link reads run_id."""
    # By its visible text: a sortable header's accessible name is its button's label, "sort".
    header = page.get_by_role("columnheader").filter(has_text=re.compile(rf"^\s*{re.escape(column)}\s*$"))
    expect(header).to_be_visible(timeout=TIMEOUT_MS)  # also: the translations have loaded
    headers = [text.strip() for text in page.get_by_role("columnheader").all_inner_texts()]
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=run_id, exact=True))
    return row.get_by_role("cell").nth(headers.index(column))
