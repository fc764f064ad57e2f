"""The explorer in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

A seeded run: the ADT emulator (``python -m twinbridge adt serve``, HTTPS with its own CA) with two sites containing
six devices, the local Functions host writing to it through the app's real ADT adapter (DigitalTwinsClient, the CA
through REQUESTS_CA_BUNDLE), one event quarantined by the host (its topic is not allowed there; the explorer's
settings allow it, as after a config fix), and the explorer reading the emulator and polling it for changes.
Each test loads the page and checks what a person would: the graph, a twin's properties after a click on its node,
a query's results and highlight, a live update after an event is posted to the local host, a replay from the
quarantine tab, the egress counters, keyboard use and labels, a narrow window. Screenshots go to .run/explorer/.

Chromium missing: skipped with how to install it, except under CI=true, where it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError

from tests.support import event_factory as factory
from tests.support.fake_adt import FakeCredential
from tests.twinbridge_explorer.emulator import SOURCE_TIME, Emulator, seed, start_emulator
from twinbridge.explorer.local import LocalRun
from twinbridge.explorer.server import RunningExplorer, cytoscape_path, serve
from twinbridge.explorer.source import AdtSource, StaticToken

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".run" / "explorer"
OTHER_TOPIC = factory.TOPIC.replace("FACTORY-HUB", "LAB-HUB")
CONNECTED = "SELECT * FROM DIGITALTWINS T WHERE T.connectionState = 'Connected'"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars"]


def chromium() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver and cytoscape_path() is not None:
        return browser, driver
    why = ("chromium and chromium-driver are not installed: run `sh twinbridge/explorer/install_browser.sh` "
           "(apt-get, as root)") if not (browser and driver) else \
        "node_modules/cytoscape is missing: run `make install` (npm)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run under CI: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    binary, driver_path = chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1280,800")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    viewport(driver, 1280, 800)
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Run:
    def __init__(self, emulator: Emulator, host: Any, explorer: RunningExplorer) -> None:
        self.emulator = emulator
        self.client = emulator.client()
        self.host = host
        self.explorer = explorer

    def twin(self, twin_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.client.get_digital_twin(twin_id))
        except ResourceNotFoundError:
            return None

    def post_to_host(self, events: list[dict[str, Any]]) -> None:
        response = requests.post(f"{self.host.url}/runtime/webhooks/eventgrid?functionName=ingest_iothub_events",
                                 data=orjson.dumps(events), timeout=30,
                                 headers={"aeg-event-type": "Notification", "Content-Type": "application/json"})
        assert response.status_code == 202, response.text


def write_settings(path: Path, values: dict[str, str]) -> Path:
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": values}))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from twinbridge.localhost.runtime import start_local_host

    folder = tmp_path_factory.mktemp("explorer-run")
    saved = dict(os.environ)
    emulator = start_emulator(folder)
    try:
        with pytest.MonkeyPatch.context() as patch:
            # The app's ADT adapter asks DefaultAzureCredential for a token (the emulator takes any) and trusts the
            # emulator's CA through REQUESTS_CA_BUNDLE, with no change to the app.
            patch.setattr("azure.identity.DefaultAzureCredential", FakeCredential)
            for name in [k for k in os.environ if k.startswith(("TWINBRIDGE_", "AzureWebJobs")) or k == "ADT_URL"]:
                patch.delenv(name)
            patch.setenv("REQUESTS_CA_BUNDLE", emulator.ca)
            seed(emulator.client())
            values = {"FUNCTIONS_WORKER_RUNTIME": "python", "ADT_URL": emulator.url, "TWINBRIDGE_ALLOWED_TOPICS":
                      factory.TOPIC, "TWINBRIDGE_QUARANTINE_FILE": str(folder / "quarantine.jsonl"),
                      "TWINBRIDGE_STATE_STORE": "memory", "AzureWebJobs.ingest_iothub_stream.Disabled": "true",
                      "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true"}
            host = start_local_host(settings_path=write_settings(folder / "local.settings.json", values), port=0,
                                    outputs_dir=folder / "outputs")
            fixed = write_settings(folder / "fixed.settings.json",
                                   {**values, "TWINBRIDGE_ALLOWED_TOPICS": f"{factory.TOPIC},{OTHER_TOPIC}"})
            source = AdtSource.connect(emulator.url, StaticToken(), emulator.ca)
            explorer = serve(source, LocalRun(fixed, host.url), port=0, live="auto", poll_interval=0.3)
            try:
                setup = Run(emulator, host, explorer)
                lab = factory.lifecycle("lab-01", second=1)
                lab["topic"] = OTHER_TOPIC
                setup.post_to_host([factory.lifecycle("dev-06", second=1), lab])
                yield setup
            finally:
                explorer.stop()
                host.stop()
    finally:
        emulator.stop()
        os.environ.clear()
        os.environ.update(saved)


def viewport(driver: Any, width: int, height: int) -> None:
    """Make the page's own area (window.innerWidth × innerHeight) this size: the window adds its frame."""
    driver.set_window_size(width, height)
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(width + width - inner[0], height + height - inner[1])


def wait(driver: Any, condition: Any, timeout: float = 10.0, what: str = "") -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # the page re-renders a panel when its data arrives: an element found a moment ago may be gone, so look again
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(condition, what)


def js(driver: Any, script: str, *args: Any) -> Any:
    return driver.execute_script(script, *args)


def open_page(driver: Any, run: Run) -> None:
    driver.get(run.explorer.url)
    wait(driver, lambda d: "twins," in d.find_element("id", "graph-note").text, what="the graph loaded")
    # cytoscape's layout has run once every node has a position
    wait(driver, lambda d: js(d, "return !!state.cy && state.cy.nodes().length > 0"), what="cytoscape drew the graph")


def shot(driver: Any, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def click_node(driver: Any, twin_id: str) -> None:
    """A real mouse click where cytoscape drew the node (offsets are from the container's centre)."""
    from selenium.webdriver.common.action_chains import ActionChains

    graph = driver.find_element("id", "graph")
    x, y = js(driver, "const p = state.cy.getElementById(arguments[0]).renderedPosition(); return [p.x, p.y];",
              twin_id)
    size = graph.size
    ActionChains(driver).move_to_element_with_offset(graph, int(x - size["width"] / 2),
                                                     int(y - size["height"] / 2)).click().perform()


def property_cells(driver: Any, name: str) -> list[str] | None:
    """Value, last update time and source time of one property row (read at once: the inspector re-renders)."""
    cells: list[str] | None = js(driver, "const row = document.querySelector("
                                 "`#properties tr[data-property=\"${arguments[0]}\"]`);"
                                 "return row ? [...row.querySelectorAll('td')].map(c => c.textContent) : null;", name)
    return cells


def property_value(driver: Any, name: str) -> str | None:
    cells = property_cells(driver, name)
    return cells[0] if cells else None


def test_graph_of_the_seeded_run(browser: Any, run: Run) -> None:
    open_page(browser, run)
    assert js(browser, "return [window.innerWidth, window.innerHeight]") == [1280, 800]
    # six seeded devices, two sites, and the device the host created through the app's ADT adapter
    wait(browser, lambda d: js(d, "return state.cy.nodes().length") == 9, what="9 twins")
    assert js(browser, "return state.cy.edges().length") == 6
    assert browser.find_element("id", "graph-note").text.startswith("9 twins, 6 relationships")
    assert sorted(js(browser, "return state.cy.nodes().map(n => n.id())")) == [
        "dev-00", "dev-01", "dev-02", "dev-03", "dev-04", "dev-05", "dev-06", "site-north", "site-south"]
    edge = js(browser, "const e = state.cy.getElementById('rel:site-north:contains-dev-00'); "
                       "return [e.source().id(), e.target().id(), e.data('label')]")
    assert edge == ["site-north", "dev-00", "contains"]
    colours = js(browser, "return ['dev-00', 'dev-01', 'site-north'].map(i => state.cy.getElementById(i)"
                          ".style('background-color'))")
    assert colours[0] == colours[1] != colours[2]  # colour by model
    assert js(browser, "return [state.cy.getElementById('dev-00').hasClass('connected'), "
                       "state.cy.getElementById('dev-01').hasClass('disconnected')]") == [True, True]
    legend = browser.find_element("id", "legend").text
    assert "twinbridge:IoTDevice;1 (7)" in legend and "twinbridge:test:Site;1 (2)" in legend
    shot(browser, "graph")


def test_click_a_twin_and_read_its_properties(browser: Any, run: Run) -> None:
    open_page(browser, run)
    click_node(browser, "dev-02")
    wait(browser, lambda d: d.find_element("id", "inspector-title").text.startswith("dev-02"), what="inspector")
    assert property_value(browser, "temperature") == "22"
    assert property_value(browser, "connectionState") == "Connected"
    cells = property_cells(browser, "temperature")
    stored = run.twin("dev-02")
    assert stored is not None and cells is not None
    assert cells[1] == stored["$metadata"]["temperature"]["lastUpdateTime"]  # $metadata shown as ADT keeps it
    assert cells[2] == SOURCE_TIME
    inspector = browser.find_element("id", "inspector").text
    assert "dtmi:twinbridge:IoTDevice;1" in inspector and "Relationships in (1)" in inspector
    assert "← contains from site-north" in inspector and "temperature: Property (double)" in inspector
    shot(browser, "inspector")
    # following a relationship opens the other end
    browser.find_element("css selector", 'button[aria-label="Go to twin site-north"]').click()
    wait(browser, lambda d: d.find_element("id", "inspector-title").text == "site-north")
    assert "Relationships out (3)" in browser.find_element("id", "inspector").text


def test_run_a_query_and_see_results_and_highlight(browser: Any, run: Run) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, run)
    browser.find_element("id", "tab-query").click()
    box = browser.find_element("id", "query")
    box.clear()
    box.send_keys(CONNECTED)
    box.send_keys(Keys.CONTROL, Keys.ENTER)
    wait(browser, lambda d: d.find_element("id", "query-status").text.startswith("3 results"), what="results")
    ids = [e.text for e in browser.find_elements("css selector", "#query-results tbody tr td:first-child")]
    assert ids == ["dev-00", "dev-02", "dev-04"]
    headers = [e.text for e in browser.find_elements("css selector", "#query-results thead th")]
    assert headers[0] == "$dtId" and "temperature" in headers
    assert sorted(js(browser, "return state.cy.nodes('.hit').map(n => n.id())")) == ["dev-00", "dev-02", "dev-04"]
    assert js(browser, "return state.cy.nodes('.dim').length") == 6
    shot(browser, "query")
    # a query the service refuses shows its error
    box.clear()
    box.send_keys("SELECT nonsense")
    browser.find_element("id", "run-query").click()
    wait(browser, lambda d: d.find_element("id", "query-status").get_attribute("class") == "error", what="error")
    assert browser.find_element("id", "query-status").text.startswith("SqlQueryError: expected FROM")


def test_live_update_arrives_after_an_event_is_posted_to_the_local_host(browser: Any, run: Run) -> None:
    open_page(browser, run)
    browser.find_element("css selector", '#twin-list button[data-twin="dev-00"]').click()
    wait(browser, lambda d: property_value(d, "temperature") == "20", what="dev-00 inspected")
    before = int(browser.find_element("id", "total").text)
    run.post_to_host([factory.telemetry("dev-00", {"temperature": 42.5}, second=30)])
    wait(browser, lambda d: property_value(d, "temperature") == "42.5", timeout=15, what="the live update")
    assert int(browser.find_element("id", "total").text) > before
    assert js(browser, "return state.twins.get('dev-00').temperature") == 42.5
    assert browser.find_element("id", "live-mode").text == "live: polling"
    shot(browser, "live")
    # paused: changes are counted, not applied; resumed: the graph catches up
    browser.find_element("id", "pause").click()
    run.post_to_host([factory.telemetry("dev-00", {"temperature": 43.5}, second=31)])
    wait(browser, lambda d: "waiting" in d.find_element("id", "pause").text, timeout=15, what="a waiting change")
    assert property_value(browser, "temperature") == "42.5"
    browser.find_element("id", "pause").click()
    wait(browser, lambda d: property_value(d, "temperature") == "43.5", what="caught up after resume")


def test_replay_a_quarantined_event(browser: Any, run: Run) -> None:
    open_page(browser, run)
    browser.find_element("id", "tab-quarantine").click()
    wait(browser, lambda d: "1 quarantined event" in d.find_element("id", "quarantine-status").text, what="list")
    row = browser.find_element("css selector", "#quarantine-table tbody tr")
    text = row.text
    assert "TOPIC_NOT_ALLOWED" in text and "topic" in text  # code and field path
    browser.find_element("css selector", "#quarantine-table summary").click()
    assert "lab-01" in browser.find_element("css selector", "#quarantine-table pre").text  # the excerpt
    shot(browser, "quarantine")
    row.find_element("css selector", "button").click()
    wait(browser, lambda d: "resolved 1" in d.find_element("id", "quarantine-status").text, timeout=15,
         what="replayed")
    assert "0 quarantined event(s)" in browser.find_element("id", "quarantine-status").text
    assert run.twin("lab-01") is not None  # the replay wrote the twin
    wait(browser, lambda d: js(d, "return state.twins.has('lab-01')"), timeout=15, what="the new twin in the graph")
    shot(browser, "replayed")


def test_egress_and_host_counters(browser: Any, run: Run) -> None:
    open_page(browser, run)
    browser.find_element("id", "tab-egress").click()
    wait(browser, lambda d: "twin writes" in d.find_element("id", "egress-status").text, what="counters")
    tables = browser.find_element("id", "egress").text
    assert "Output messages per route" in tables and "applied" in tables and "TOPIC_NOT_ALLOWED" in tables
    shot(browser, "egress")


def test_keyboard_navigation_and_labels(browser: Any, run: Run) -> None:
    from selenium.webdriver.common.keys import Keys

    open_page(browser, run)
    unlabelled = js(browser, """
        const bad = [];
        for (const e of document.querySelectorAll('input, textarea, select'))
          if (!(e.labels && e.labels.length) && !e.getAttribute('aria-label')) bad.push(e.id || e.outerHTML);
        for (const b of document.querySelectorAll('button'))
          if (!(b.getAttribute('aria-label') || b.textContent.trim())) bad.push(b.outerHTML);
        for (const t of document.querySelectorAll('[role=tab]'))
          if (!document.getElementById(t.getAttribute('aria-controls'))) bad.push(t.id);
        return bad;""")
    assert unlabelled == []
    twins = js(browser, "return state.twins.size")
    assert browser.find_element("id", "graph").get_attribute("aria-label").startswith(f"Twin graph: {twins} twins")
    # tabs: arrow keys move the selection and the focus; the panel follows
    browser.find_element("id", "tab-inspector").send_keys(Keys.ARROW_RIGHT)
    assert browser.switch_to.active_element.get_attribute("id") == "tab-query"
    assert browser.find_element("id", "tab-query").get_attribute("aria-selected") == "true"
    assert browser.find_element("id", "panel-query").is_displayed()
    assert not browser.find_element("id", "panel-inspector").is_displayed()
    browser.switch_to.active_element.send_keys(Keys.END)
    assert browser.switch_to.active_element.get_attribute("id") == "tab-egress"
    # the twin list: arrows move, Enter inspects
    first = browser.find_element("css selector", "#twin-list button")
    first.send_keys(Keys.ARROW_DOWN)
    focused = browser.switch_to.active_element
    assert focused.get_attribute("data-twin") == "dev-01"
    focused.send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_element("id", "inspector-title").text.startswith("dev-01"), what="Enter inspects")
    assert browser.find_element("id", "panel-inspector").is_displayed()
    # search by id, from the keyboard
    search = browser.find_element("id", "search")
    search.send_keys("site-so", Keys.ENTER)
    wait(browser, lambda d: d.find_element("id", "inspector-title").text == "site-south", what="search")
    # on a fresh page, Tab order starts with the skip link, which lands on the panels
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(browser, run)
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.text == "Skip to the panels"
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "side", what="skip link")


def test_narrow_window(browser: Any, run: Run) -> None:
    viewport(browser, 400, 800)
    try:
        open_page(browser, run)
        layout = js(browser, """
            const g = document.querySelector('.graph-pane').getBoundingClientRect();
            const s = document.querySelector('.side').getBoundingClientRect();
            return {overflow: document.documentElement.scrollWidth - window.innerWidth, graphTop: g.top,
                    graphBottom: g.bottom, sideTop: s.top, graphHeight: document.getElementById('graph')
                    .getBoundingClientRect().height, width: window.innerWidth};""")
        assert layout["width"] == 400
        assert layout["overflow"] <= 0, layout  # no sideways scrolling
        assert layout["sideTop"] >= layout["graphBottom"] - 1, layout  # one column: panels under the graph
        assert layout["graphHeight"] >= 250, layout
        click_node(browser, "dev-03")
        wait(browser, lambda d: d.find_element("id", "inspector-title").text.startswith("dev-03"), what="inspector")
        shot(browser, "narrow")
    finally:
        viewport(browser, 1280, 800)
