"""The dashboard in a real headless chromium, against a real server with API tokens.

Runs are submitted through the API, as any client would; the pages are driven as a user
would. Every test fails if the browser's console shows an error it did not expect, and
saves screenshots of the pages to ``$TOOLCHEST_WES_ARTIFACTS/dashboard`` (or a temporary
folder).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import Browser, browser_session, require_browser
from tests.conftest import API, EXAMPLES
from tests.oidc_provider import AUDIENCE, CLIENT_ID, Idp, serve_idp
from tests.processes import Server, bearer_token
from tests.snakemake_support import require_snakemake

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HELLO = EXAMPLES / "hello" / "hello.cwl"
SLEEP = Path(__file__).resolve().parents[1] / "cwl" / "sleep.cwl"
# Writes a line to its stderr every second: a log to follow while the run is active.
TICK = """\
cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments:
  - position: 1
    valueFrom: 'i=0; while [ "$i" -lt "$0" ]; do i=`expr $i + 1`; echo "tick $i" >&2; sleep 1; done'
inputs:
  ticks: {type: int, inputBinding: {position: 2}}
outputs: []
"""


class User:
    """A user of the server: their token, and API calls made with it."""

    def __init__(self, url: str, header: dict[str, str]) -> None:
        self.url = url
        self.header = header
        self.token = header["Authorization"].removeprefix("Bearer ")

    def submit(
        self, name: str, body: bytes, params: dict[str, Any], tags: dict[str, str] | None = None
    ) -> str:
        response = httpx.post(
            f"{self.url}{API}/runs",
            headers=self.header,
            data={
                "workflow_type": "CWL",
                "workflow_type_version": "v1.2",
                "workflow_url": name,
                "workflow_params": json.dumps(params),
                "tags": json.dumps(tags or {}),
            },
            files=[("workflow_attachment", (name, body))],
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["run_id"])

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{API}{path}", headers=self.header, timeout=30)

    def state(self, run_id: str) -> str:
        return str(self.get(f"/runs/{run_id}/status").json()["state"])


@dataclass
class Site:
    """The server and the authorization headers of its users."""

    server: Server
    headers: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    require_browser()
    data = tmp_path_factory.mktemp("dashboard") / "data"
    headers = {user: bearer_token(data, user) for user in ("alice", "bob", "boss")}
    # The tests submit faster than one user may by default (the paging test alone, 21 runs).
    # Without the run sandbox, which tokens turn on, the server offers Snakemake too.
    args = ("--auth", "tokens", "--admin-users", "boss", "--submit-rate", "0", "--sandbox", "none")
    server = Server(data, *args)
    server.start()
    yield Site(server, headers)
    server.kill()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = os.environ.get("TOOLCHEST_WES_ARTIFACTS")
    folder = Path(root) / "dashboard" if root else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def alice(site: Site) -> User:
    return User(site.server.url, site.headers["alice"])


@pytest.fixture
def bob(site: Site) -> User:
    return User(site.server.url, site.headers["bob"])


@contextlib.contextmanager
def _checked_browser(url: str, shots: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A fresh browser; after the test, no console error but those the test allowed."""
    with browser_session(url, shots) as browser:
        yield browser
        errors = [
            e
            for e in browser.console_errors()
            if not any(a in e["message"] for a in browser.allowed)
        ]
        assert not errors, f"{request.node.name}: the browser console shows errors: {errors}"


@pytest.fixture
def browser(site: Site, shots: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    with _checked_browser(site.server.url, shots, request) as browser:
        yield browser


def _row_state(browser: Browser, run_id: str) -> str:
    return browser.text(f'tr[data-run="{run_id}"] .state')


def test_the_list_shows_runs_and_follows_their_states_live(browser, alice):
    # client_request_id is the tag the Python client adds to every submission.
    tags = {"name": "live list", "client_request_id": "0123abcd"}
    run_id = alice.submit("tick.cwl", TICK.encode(), {"ticks": 3}, tags)
    browser.sign_in(alice.token)
    browser.go("/runs")
    browser.wait(lambda: _row_state(browser, run_id) in {"QUEUED", "INITIALIZING", "RUNNING"})
    browser.shot("runs-active")
    # No reload: the page polls the listing.
    browser.wait(lambda: _row_state(browser, run_id) == "COMPLETE", timeout=60)
    row = browser.text(f'tr[data-run="{run_id}"]')
    assert "live list" in row
    assert "name:live list" in row
    assert "client_request_id" not in row
    browser.wait_text("#counts", "COMPLETE")
    browser.shot("runs")


def test_the_filters_ask_the_api_and_filter_the_page(browser, alice):
    tag = {"project": "filters"}
    done = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "a"}, tag)
    sleeping = alice.submit("sleep.cwl", SLEEP.read_bytes(), {"seconds": 300}, tag)
    other = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "b"}, {"project": "else"})
    try:
        browser.sign_in(alice.token)
        browser.go("/runs")
        browser.find("#f-tag").send_keys("project:filters\n")
        browser.wait(lambda: _row_state(browser, done) != "" and _row_state(browser, other) == "")
        browser.wait(lambda: _row_state(browser, done) == "COMPLETE", timeout=60)
        from selenium.webdriver.support.ui import Select

        Select(browser.find("#f-state")).select_by_value("RUNNING")
        browser.wait(lambda: _row_state(browser, done) == "" and _row_state(browser, sleeping))
        assert "state=RUNNING" in browser.driver.current_url
        # The groups go to the server as they are: it knows which states each stands for.
        Select(browser.find("#f-state")).select_by_value("finished")
        browser.wait(lambda: _row_state(browser, sleeping) == "" and _row_state(browser, done))
        assert "state=finished" in browser.driver.current_url
        Select(browser.find("#f-state")).select_by_value("active")
        browser.wait(lambda: _row_state(browser, done) == "" and _row_state(browser, sleeping))
        assert Select(browser.find("#f-state")).first_selected_option.text == "Active"
        Select(browser.find("#f-state")).select_by_value("")
        browser.wait(lambda: bool(_row_state(browser, done)))
        browser.find("#f-q").send_keys(done[:8])
        browser.wait(
            lambda: _row_state(browser, sleeping) == "" and bool(_row_state(browser, done))
        )
        browser.shot("runs-filtered")
    finally:
        httpx.post(f"{alice.url}{API}/runs/{sleeping}/cancel", headers=alice.header, timeout=30)


def test_the_list_pages_with_the_apis_page_tokens(browser, alice):
    tag = {"batch": "paging"}
    runs = [alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "p"}, tag) for _ in range(21)]
    browser.sign_in(alice.token)
    browser.go("/runs?tag=batch:paging")
    rows = "tr[data-run]"
    count = f"return document.querySelectorAll('#rows {rows}').length"
    browser.wait(lambda: browser.driver.execute_script(count) == 20)
    # Newest first: the last submitted run leads the first page, the first one is alone next.
    assert _row_state(browser, runs[-1]) and not _row_state(browser, runs[0])
    assert browser.find("#newer").get_attribute("disabled")
    browser.find("#older").click()
    browser.wait(lambda: browser.driver.execute_script(count) == 1)
    assert _row_state(browser, runs[0])
    assert browser.text("#page-no") == "Page 2"
    browser.find("#newer").click()
    browser.wait(lambda: browser.driver.execute_script(count) == 20)
    assert browser.text("#page-no") == "Page 1"


def test_the_run_page_follows_the_log_of_a_running_workflow(browser, alice):
    run_id = alice.submit("tick.cwl", TICK.encode(), {"ticks": 8})
    browser.sign_in(alice.token)
    browser.go(f"/runs/{run_id}")
    browser.wait_text("#state", "RUNNING", timeout=30)
    # The engine's own log, while the run is active.
    browser.wait_text("#stderr", "[job tick.cwl]")
    browser.find('#tasks button[data-task="1"]').click()
    browser.wait_text("#task-stderr", "tick 1")
    assert alice.state(run_id) == "RUNNING"
    assert "tick 8" not in browser.text("#task-stderr")
    browser.shot("run-following")
    browser.wait_text("#task-stderr", "tick 8", timeout=60)
    browser.wait_text("#state", "COMPLETE", timeout=30)
    assert browser.text("#task-stderr").count("tick 1\n") == 1  # appended, never repeated
    assert "Exit code\n0" in browser.text("#timeline") or "Exit code0" in browser.text("#timeline")


def test_a_download_link_fetches_the_output_bytes(browser, alice):
    run_id = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "bytes for the browser"})
    browser.sign_in(alice.token)
    browser.go(f"/runs/{run_id}")
    browser.wait_text("#outputs", "Download all", timeout=60)
    listing = alice.get(f"/runs/{run_id}/outputs").json()
    (output,) = listing["files"]
    expected = alice.get(f"/runs/{run_id}/outputs/{output['path']}").content
    assert expected  # the check below compares real bytes
    browser.shot("run")
    browser.find(f'#outputs a[data-file="{output["path"].split("/")[-1]}"]').click()
    saved = browser.downloads / output["path"].split("/")[-1]
    browser.wait(saved.exists, what=f"the download of {saved.name}")
    assert saved.read_bytes() == expected


def test_cancel_asks_first_then_cancels(browser, alice):
    run_id = alice.submit("sleep.cwl", SLEEP.read_bytes(), {"seconds": 300})
    browser.sign_in(alice.token)
    browser.go(f"/runs/{run_id}")
    browser.wait_text("#state", "RUNNING", timeout=30)
    browser.find("#cancel").click()
    browser.driver.switch_to.alert.dismiss()
    assert alice.state(run_id) == "RUNNING"
    browser.find("#cancel").click()
    browser.driver.switch_to.alert.accept()
    browser.wait_text("#state", "CANCELED", timeout=60)
    assert alice.state(run_id) == "CANCELED"
    browser.find("#delete").click()
    browser.driver.switch_to.alert.accept()
    browser.wait(lambda: "#/runs" in browser.driver.current_url and bool(browser.text("#rows")))
    assert alice.get(f"/runs/{run_id}").status_code == 404


def test_a_second_user_does_not_see_the_first_users_runs(browser, alice, bob):
    mine = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "alice only"})
    theirs = bob.submit("hello.cwl", HELLO.read_bytes(), {"message": "bob only"})
    browser.sign_in(bob.token)
    browser.go("/runs")
    browser.wait(lambda: bool(_row_state(browser, theirs)))
    assert _row_state(browser, mine) == ""
    assert mine not in browser.text("#rows")
    # Someone else's run answers like a missing one; the page says so.
    browser.go(f"/runs/{mine}")
    browser.wait_text("#notice", "404")
    browser.allowed.append(f"/runs/{mine}")


def test_an_admin_sees_every_users_runs(browser, alice, bob, site):
    boss = User(site.server.url, site.headers["boss"])
    runs = [alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "a"}, {"who": "all"})]
    runs.append(bob.submit("hello.cwl", HELLO.read_bytes(), {"message": "b"}, {"who": "all"}))
    browser.sign_in(boss.token)
    browser.go("/runs?tag=who:all")
    browser.wait(lambda: all(_row_state(browser, r) for r in runs))


def test_a_bad_token_shows_a_clear_message(browser):
    browser.open("/runs")
    # Without a token the first request is refused: the page asks for one.
    browser.wait_text("#login-why", "needs an API token")
    browser.find("#token-input").send_keys("not-a-token\n")
    browser.wait_text("#notice", "refused this token")
    assert "unknown or revoked" in browser.text("#notice")
    assert browser.find("#token-input").is_displayed()
    browser.shot("bad-token")
    browser.allowed.append("401")


def test_submit_and_service_pages(browser, alice, tmp_path):
    workflow = tmp_path / "hello.cwl"
    workflow.write_bytes(HELLO.read_bytes())
    browser.sign_in(alice.token)
    browser.wait_text("main", "cwltool")
    browser.wait_text("main", "/ga4gh/wes/v1/ui/")
    browser.shot("service")
    browser.go("/submit")
    browser.find("#s-workflow").send_keys(str(workflow))
    params = browser.find("#s-params")
    params.clear()
    params.send_keys('{"message": "from the form"}')
    browser.find("#s-tags").send_keys("origin:form")
    browser.shot("submit")
    browser.find("#submit button[type=submit]").click()
    browser.wait(lambda: "#/runs/" in browser.driver.current_url)
    run_id = browser.driver.current_url.rsplit("/", 1)[1]
    browser.wait_text("#state", "COMPLETE", timeout=60)
    request = alice.get(f"/runs/{run_id}").json()["request"]
    assert request["tags"] == {"origin": "form"}
    assert request["workflow_params"] == {"message": "from the form"}


def test_a_snakefile_is_submitted_as_smk_to_the_engine_chosen(browser, alice, tmp_path):
    from selenium.webdriver.support.ui import Select

    require_snakemake()
    snakefile = tmp_path / "Snakefile"
    snakefile.write_bytes((EXAMPLES / "snakemake" / "hello" / "Snakefile").read_bytes())
    browser.sign_in(alice.token)
    browser.go("/submit")
    engines = Select(browser.find("#s-engine"))
    assert engines.first_selected_option.text.startswith("cwltool")
    browser.find("#s-workflow").send_keys(str(snakefile))
    browser.wait(lambda: browser.find("#s-type").get_attribute("value").startswith("SMK "))
    assert [o.get_attribute("value") for o in engines.options] == ["snakemake"]
    browser.find("#submit button[type=submit]").click()
    browser.wait(lambda: "#/runs/" in browser.driver.current_url)
    run_id = browser.driver.current_url.rsplit("/", 1)[1]
    browser.wait_text("#state", "COMPLETE", timeout=60)
    request = alice.get(f"/runs/{run_id}").json()["request"]
    assert (request["workflow_type"], request["workflow_engine"]) == ("SMK", "snakemake")


def _choose_tool(browser: Browser, name: str) -> None:
    from selenium.webdriver.support.ui import Select

    select = Select(browser.find("#t-tool"))
    labels = [option.text for option in select.options]
    select.select_by_index(next(i for i, t in enumerate(labels) if t.split()[0] == name))
    browser.find(f"#t-inputs #t-in-{'inputs' if name == 'wc' else 'input'}")


def test_a_named_tool_runs_from_the_form_made_from_its_inputs(browser, alice, tmp_path):
    text = tmp_path / "words.txt"
    text.write_text("one two\nthree\n")
    browser.sign_in(alice.token)
    browser.wait_text("main", "cwltool")
    browser.go("/submit")
    browser.find("#s-mode-tool").click()
    browser.find("#t-tool")
    assert not browser.find("#submit").is_displayed()  # the upload form gives way
    # A value of the wrong type is named before anything is sent.
    _choose_tool(browser, "gzip")
    browser.wait_text("#t-description", "Compress")
    assert browser.find("#t-in-level").get_attribute("value") == "6"  # the default
    unlabelled = browser.driver.execute_script(
        "return [...document.querySelectorAll('#tool-submit input, #tool-submit select')]"
        ".filter(e => !e.labels?.length).map(e => e.id)"
    )
    assert unlabelled == []
    level = browser.find("#t-in-level")
    level.clear()
    level.send_keys("nine")
    browser.find("#t-in-input").send_keys(str(text))
    browser.find("#tool-submit button[type=submit]").click()
    browser.wait_text("#t-error", 'input "level": expected an integer, got "nine"')
    # So is a required input left empty.
    _choose_tool(browser, "wc")
    assert "The text files to count." in browser.text("#t-inputs")
    browser.find("#tool-submit button[type=submit]").click()
    browser.wait_text("#t-error", 'input "inputs" is required')
    assert "#/submit" in browser.driver.current_url
    browser.find("#t-in-inputs").send_keys(str(text))
    browser.shot("submit-tool")
    browser.find("#tool-submit button[type=submit]").click()
    browser.wait(lambda: "#/runs/" in browser.driver.current_url)
    run_id = browser.driver.current_url.rsplit("/", 1)[1]
    browser.wait_text("#state", "COMPLETE", timeout=90)
    browser.wait_text("#outputs", "counts.txt")
    request = alice.get(f"/runs/{run_id}").json()["request"]
    host = alice.url.split("://", 1)[1]
    assert request["tags"]["toolchest_wes.tool_url"] == f"trs://{host}/wc/1.0"
    assert request["workflow_params"] == {"inputs": [{"class": "File", "location": "words.txt"}]}


def test_the_pages_work_on_a_narrow_screen_by_keyboard(browser, alice):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "narrow"})
    browser.driver.set_window_size(380, 800)
    browser.sign_in(alice.token)
    browser.go("/runs")
    browser.driver.refresh()  # a fresh load, focus at the top; the token stays for the tab
    browser.find("#rows a")
    # No sideways scrolling of the page itself: wide tables scroll in their own box.
    assert browser.driver.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"
    )
    ActionChains(browser.driver).send_keys(Keys.TAB).perform()
    assert browser.driver.switch_to.active_element.text == "Skip to content"
    ActionChains(browser.driver).send_keys(Keys.ENTER).perform()
    assert browser.driver.switch_to.active_element.get_attribute("id") == "main"
    # Every form control has a label.
    unlabelled = browser.driver.execute_script(
        "return [...document.querySelectorAll('input, select, textarea')]"
        ".filter(e => !e.labels?.length && !e.getAttribute('aria-label')).map(e => e.id)"
    )
    assert unlabelled == []
    browser.shot("runs-narrow")


def test_every_page_passes_axe_and_has_enough_contrast(browser, alice):
    from axe_selenium_python import Axe  # axe-core, bundled: no network

    run_id = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "contrast"}, {"a": "b"})
    browser.sign_in(alice.token)
    browser.wait_text("main", "cwltool")
    pages = {"/service": "cwltool", "/runs": run_id, f"/runs/{run_id}": "Download all"}
    pages["/submit"] = "Workflow file"
    pages["/submit?tool"] = "Run the tool"
    for route, ready in pages.items():
        browser.go(route.removesuffix("?tool"))
        if route.endswith("?tool"):
            browser.find("#s-mode-tool").click()
            _choose_tool(browser, "gzip")
        browser.wait_text("main", ready, timeout=60)
        assert browser.low_contrast() == [], route
        axe = Axe(browser.driver)
        axe.inject()
        violations = axe.run()["violations"]
        assert not violations, (route, [(v["id"], v["nodes"][0]["target"]) for v in violations])


@dataclass
class OidcSite:
    """A server with ``--auth oidc`` and a dashboard client id, and its identity provider."""

    server: Server
    idp: Idp


@pytest.fixture(scope="module")
def oidc_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcSite]:
    require_browser()
    data = tmp_path_factory.mktemp("dashboard-oidc") / "data"
    with serve_idp() as idp:
        args = (
            *("--auth", "oidc", "--oidc-issuer", idp.url, "--oidc-audience", AUDIENCE),
            *("--oidc-jwks", f"{idp.url}/jwks", "--oidc-client-id", CLIENT_ID),
            *("--submit-rate", "0"),
        )
        server = Server(data, *args)
        idp.redirect_uri = f"{server.url}/"
        server.start()
        yield OidcSite(server, idp)
        server.kill()


@pytest.fixture
def oidc_browser(
    oidc_site: OidcSite, shots: Path, request: pytest.FixtureRequest
) -> Iterator[Browser]:
    oidc_site.idp.forged_state = None
    oidc_site.idp.wrong_challenge = False
    with _checked_browser(oidc_site.server.url, shots, request) as browser:
        yield browser


def _sign_in_with_the_issuer(browser: Browser, idp: Idp) -> None:
    browser.open("/runs")
    host = idp.url.removeprefix("http://")
    browser.wait_text("#oidc-signin", f"Sign in with {host}")
    browser.find("#oidc-signin").click()


def test_sign_in_with_the_issuer_shows_the_users_own_runs(oidc_browser, oidc_site):
    idp = oidc_site.idp
    browser = oidc_browser
    alice = User(oidc_site.server.url, {"Authorization": f"Bearer {idp.token('alice')}"})
    bob = User(oidc_site.server.url, {"Authorization": f"Bearer {idp.token('bob')}"})
    mine = alice.submit("hello.cwl", HELLO.read_bytes(), {"message": "oidc"}, {"name": "mine"})
    theirs = bob.submit("hello.cwl", HELLO.read_bytes(), {"message": "x"}, {"name": "theirs"})
    # Before signing in, the runs page is refused: the sign-in page says so.
    browser.allowed.append("401")
    _sign_in_with_the_issuer(browser, idp)
    browser.find(f'tr[data-run="{mine}"]')
    browser.wait_text("#who", "Signed in")
    assert not browser.driver.find_elements("css selector", f'tr[data-run="{theirs}"]')
    # The code and state are gone from the address bar.
    assert browser.driver.current_url == f"{oidc_site.server.url}/#/runs"
    request = idp.token_requests[-1]
    assert request["grant_type"] == "authorization_code"
    assert request["client_id"] == CLIENT_ID
    assert request["redirect_uri"] == f"{oidc_site.server.url}/"
    assert len(request["code_verifier"]) >= 43
    browser.shot("oidc-signed-in")


def test_a_wrong_verifier_gives_a_clear_message(oidc_browser, oidc_site):
    oidc_site.idp.wrong_challenge = True
    oidc_browser.allowed.extend(["401", "/token"])
    _sign_in_with_the_issuer(oidc_browser, oidc_site.idp)
    oidc_browser.wait_text("#notice", "The identity provider refused to issue a token")
    assert "code_verifier does not match" in oidc_browser.text("#notice")
    assert "Signed in" not in oidc_browser.text("#who")
    assert "code=" not in oidc_browser.driver.current_url
    # The way to try again is still there.
    oidc_browser.find("#oidc-signin")
    oidc_browser.shot("oidc-refused")


def test_a_forged_state_gives_a_clear_message(oidc_browser, oidc_site):
    oidc_site.idp.forged_state = "forged"
    requests = len(oidc_site.idp.token_requests)
    oidc_browser.allowed.append("401")
    _sign_in_with_the_issuer(oidc_browser, oidc_site.idp)
    oidc_browser.wait_text("#notice", "its state differs")
    # The code of a forged answer is never traded for a token.
    assert len(oidc_site.idp.token_requests) == requests
    assert "Signed in" not in oidc_browser.text("#who")


def test_a_token_the_api_refuses_is_said_so(oidc_browser, oidc_site):
    # The issuer signs in a user whose token the API will not take (it has expired).
    idp = oidc_site.idp
    oidc_browser.allowed.append("401")
    original = idp.token
    idp.token = lambda sub: idp.keys.token(sub, iss=idp.url, exp=1)  # type: ignore[method-assign]
    try:
        _sign_in_with_the_issuer(oidc_browser, idp)
        oidc_browser.wait_text("#notice", "The server refused this token: the token has expired")
    finally:
        idp.token = original  # type: ignore[method-assign]
