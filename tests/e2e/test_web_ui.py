"""Browser tests in headless Chromium (Debian's package, driven by Playwright): log in, open every
page on the demo data, check that the numbers shown are the commands' JSON, and prove that hostile
model output is shown as text and never runs."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.e2e.demo_site import (
    JUDGE,
    PASSWORD,
    PROBE_CATEGORY,
    PROBE_INPUT,
    PROBE_MODEL,
    PROBE_OUTPUT,
    PROBE_REFERENCE,
    PROBE_TITLE,
    ROOT,
    USER,
    build,
    env_for,
    manage,
)

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MQM = "wmt23-mqm@1"
DEFAULT = "default@1"
# Full-page screenshots of the main pages, to look at (var/ is not in git).
SCREENSHOTS = ROOT / "var" / "screenshots"
MAIN_PAGES = {
    "dashboard": ("/", {}),
    "signatures": ("/signatures/", {"source": "human", "taxonomy": MQM, "by": "model", "depth": 2}),
    "signatures-compare": ("/signatures/", {"source": "human", "taxonomy": MQM, "depth": 2,
                                            "a": "Lan-BridgeMT", "b": "ONLINE-Y"}),
    "signatures-judge": ("/signatures/", {"source": "judge", "taxonomy": DEFAULT, "by": "dataset", "depth": 2}),
    "atlas": ("/atlas/", {"source": "judge", "taxonomy": DEFAULT, "depth": 3}),
    "agreement": ("/agreement/", {"taxonomy": MQM}),
    "agreement-default": ("/agreement/", {"taxonomy": DEFAULT}),
    "judge": ("/judge/", {"taxonomy": DEFAULT}),
    "adjudication": ("/adjudication/", {}),
    "annotation-progress": ("/annotation-progress/", {}),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The demo database and a server on it (runserver on a free loopback port)."""
    var_dir = tmp_path_factory.mktemp("e2e-var")
    build(var_dir)
    port = _free_port()
    log = (var_dir / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT, env=env_for(var_dir), stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=2)
            break
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("the web server did not start:\n" + (var_dir / "server.log").read_text())
            time.sleep(0.3)
    yield {"url": base, "var": var_dir}
    server.terminate()
    server.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    """A logged-in page; every dialog and page error is recorded (none may happen)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: run scripts/install-browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1400, "height": 1000},
        )
        page = context.new_page()
        events = {"dialogs": [], "errors": []}
        page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: events["errors"].append(str(e)))
        page.goto(site["url"] + "/signatures/")
        assert "/accounts/login/" in page.url  # login required
        page.fill("#id_username", USER)
        page.fill("#id_password", "wrong")
        page.click("#login-submit")
        assert page.locator(".error").inner_text() == "Wrong user name or password."
        page.fill("#id_username", USER)
        page.fill("#id_password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url("**/signatures/")
        yield page, events, site
        context.close()


def _json(site, *args) -> dict:
    return json.loads(manage(site["var"], *args))


def _open(page, site, path: str, **params):
    response = page.goto(site["url"] + path + ("?" + urlencode(params) if params else ""))
    assert response.status == 200, f"{path} answered {response.status}"
    return response


def _cells(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(
        selector + " tr", "rows => rows.map(r => Array.from(r.children).map(c => c.textContent.trim()))"
    )


def _full(page, selector: str) -> list[list[str]]:
    """Each cell's full value: its title= (numbers are shown rounded, the full value is on hover), else
    its text."""
    return page.eval_on_selector_all(
        selector + " tr", "rows => rows.map(r => Array.from(r.children).map(c => c.getAttribute('title') "
        "? c.getAttribute('title').trim().split(' ')[0] : c.textContent.trim()))"
    )


def test_anonymous_requests_are_sent_to_login(site):
    for path in ("/", "/signatures/", "/atlas/", "/agreement/", "/judge/", "/adjudication/"):
        with urllib.request.urlopen(site["url"] + path) as response:
            assert "/accounts/login/" in response.url, path


def test_every_page_opens_without_errors(browser):
    page, events, site = browser
    pages = {
        "/": "Dashboard",
        "/signatures/": "ErrorMap: failure signatures",
        "/atlas/": "ErrorAtlas",
        "/atlas/versions/": "Two taxonomy versions side by side",
        "/agreement/": "Agreement among human annotators",
        "/judge/": "Judge reliability",
        "/adjudication/": "Adjudication queue",
        "/annotation-progress/": "Annotation progress per Label Studio project",
    }
    for path, heading in pages.items():
        _open(page, site, path)
        assert page.locator("h1").first.inner_text() == heading
        for selector in ("#error", "#audit-error"):
            assert page.locator(selector).count() == 0, f"{path}: {page.locator(selector).inner_text()}"
    assert events["errors"] == [] and events["dialogs"] == []


def test_screenshots_of_the_main_pages(browser):
    """Screenshots to look at (var/screenshots/); every page shows numbers as people read them: no
    float counts ("52.0 errors"), no six-decimal shares, no key=value dumps."""
    page, events, site = browser
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (path, params) in MAIN_PAGES.items():
        _open(page, site, path, **params)
        for selector in ("details.numbers", "#heatmap-numbers"):  # the numbers, opened for the picture
            for handle in page.query_selector_all(selector):
                handle.evaluate("d => d.open = true")
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True, timeout=180_000)
        text = page.locator("main").inner_text()
        assert not re.search(r"\b\d+\.0 errors\b", text), f"{name}: a count shown as a float"
        assert not re.search(r"\b0\.\d{6,}\b", text), f"{name}: a raw decimal with six places"
        assert not re.search(r"\b[a-z]+_[a-z_]+=", text), f"{name}: a key=value dump"
    assert events["errors"] == [] and events["dialogs"] == []


def test_heatmap_column_labels_are_not_clipped(browser):
    page, _, site = browser
    _open(page, site, "/signatures/", source="judge", taxonomy=DEFAULT, by="dataset", depth=2)
    svg = page.locator("svg[aria-label='heatmap of shares']")
    box = svg.bounding_box()
    labels = svg.locator("text.column-label")
    assert labels.count() > 3
    for i in range(labels.count()):
        label = labels.nth(i)
        inner = label.bounding_box()
        # inside the drawing, and the whole name (shortened ones have the full name on hover)
        assert inner["x"] >= box["x"] - 0.5 and inner["x"] + inner["width"] <= box["x"] + box["width"] + 0.5
        assert inner["y"] >= box["y"] - 0.5
        full = label.locator("title").text_content()
        shown = label.evaluate("t => Array.from(t.childNodes).filter(n => n.nodeType === 3).map(n => n.data).join('')")
        assert shown == full or (shown.endswith("…") and full.startswith(shown[:-1]))


def test_dashboard_counts_match_the_api(browser):
    page, _, site = browser
    _open(page, site, "/")
    overview = page.request.get(site["url"] + "/api/overview/").json()
    assert int(page.locator("#n-predictions").inner_text()) == overview["predictions"] == 3229
    assert int(page.locator("#n-failures").inner_text()) == overview["failures"]
    for source, n in overview["labels"].items():
        assert int(page.locator(f"#n-labels-{source}").inner_text()) == n
    assert overview["labels"]["judge"] == overview["failures"]  # the demo judge labelled every failure


def test_signature_heatmap_and_intervals_match_the_command_json(browser):
    page, _, site = browser
    expected = _json(site, "signatures", "--json", "--source", "human", "--taxonomy", MQM)
    _open(page, site, "/signatures/", source="human", taxonomy=MQM, by="model", depth=1)
    assert page.locator("svg[aria-label='heatmap of shares'] rect").count() == (
        len(expected["heatmap"]["groups"]) * len(expected["heatmap"]["categories"]))
    # the numbers are one click away
    assert not page.locator("#heatmap-table").is_visible()
    page.click("#heatmap-numbers summary")
    assert page.locator("#heatmap-table").is_visible()
    rows = _cells(page, "#heatmap-table")
    assert rows[0][2:] == expected["heatmap"]["categories"]
    body = _full(page, "#heatmap-table")[1:]
    assert [r[0] for r in body] == expected["heatmap"]["groups"]
    for row, n, shares in zip(body, expected["heatmap"]["n_errors"], expected["heatmap"]["shares"], strict=True):
        assert int(row[1].replace(",", "")) == n
        assert [float(x) for x in row[2:]] == pytest.approx(shares, abs=1e-9)
    first = expected["signatures"][0]
    table = _cells(page, f"section.signature[data-group='{first['group']}'] table.signature-table")[1:]
    full = _full(page, f"section.signature[data-group='{first['group']}'] table.signature-table")[1:]
    for row, values, share in zip(table, full, first["shares"], strict=True):
        assert row[0] == share["category"]
        assert [float(x) for x in values[1:]] == pytest.approx(
            [share["count"], share["share"], share["ci_low"], share["ci_high"]], abs=1e-9)
        assert row[2] == f"{share['share'] * 100:.0f}%" or row[2].endswith("%")  # shown as a percentage


def test_two_model_comparison_matches_the_command_json(browser):
    page, _, site = browser
    a, b = "Lan-BridgeMT", "ONLINE-Y"
    expected = _json(site, "signatures", "--json", "--source", "human", "--taxonomy", MQM, "--depth", "2",
                     "--compare", a, b)
    _open(page, site, "/signatures/", source="human", taxonomy=MQM, depth=2, a=a, b=b)
    rows = _cells(page, "#comparison-table")[1:]
    full = _full(page, "#comparison-table")[1:]
    assert len(rows) == len(expected["categories"]) > 5
    for row, values, d in zip(rows, full, expected["categories"], strict=True):
        assert row[0] == d["category"]
        assert row[4] == d["test"]
        assert float(values[6]) == pytest.approx(d["p_holm"], abs=1e-9)
        assert row[7] == ("yes" if d["significant"] else "no")
    assert float(page.locator("#omnibus-p").get_attribute("title")) == pytest.approx(expected["omnibus_p"], abs=1e-9)


def test_atlas_tree_counts_match_the_signatures_and_filters_work(browser):
    page, _, site = browser
    expected = _json(site, "signatures", "--json", "--source", "judge", "--taxonomy", DEFAULT)
    total = sum(s["n_errors"] for s in expected["signatures"])
    pooled: dict[str, float] = {}
    for s in expected["signatures"]:
        for share in s["shares"]:
            pooled[share["category"]] = pooled.get(share["category"], 0) + share["count"]
    _open(page, site, "/atlas/", source="judge", taxonomy=DEFAULT, depth=3)
    assert int(page.locator("#atlas-total").inner_text().replace(",", "")) == total
    rows = {r[0]: r for r in _full(page, "#atlas-table")[1:]}
    for category, count in pooled.items():
        assert float(rows[category][2]) == pytest.approx(count, abs=1e-9)
        assert float(rows[category][3]) == pytest.approx(count / total, abs=1e-9)
    assert any(r[1] == "2" for r in rows.values())  # depth-2 nodes are shown
    # filter by model: the total is that model's number of errors
    palm = next(s for s in expected["signatures"] if s["group"] == "PaLM 2")
    _open(page, site, "/atlas/", source="judge", taxonomy=DEFAULT, model="PaLM 2", depth=1, min_share="0.1")
    assert int(page.locator("#atlas-total").inner_text().replace(",", "")) == palm["n_errors"]
    shown = _full(page, "#atlas-table")[1:]
    assert shown and all(r[1] == "1" and float(r[3]) >= 0.1 for r in shown)
    assert len(shown) == sum(1 for s in palm["shares"] if s["share"] >= 0.1)


def test_hostile_output_is_shown_as_text_and_never_runs(browser):
    page, events, site = browser
    _open(page, site, "/atlas/examples/", source="judge", taxonomy=DEFAULT, category=PROBE_CATEGORY)
    assert page.locator("#example-count").inner_text() == "1"
    assert page.locator("pre.output").text_content() == PROBE_OUTPUT
    assert page.locator("pre.input").text_content() == PROBE_INPUT
    assert page.locator("pre.reference").text_content() == PROBE_REFERENCE
    assert PROBE_TITLE in page.locator(".judge").text_content()
    assert PROBE_MODEL in page.locator("article.failure .muted").first.text_content()
    assert page.locator("#xss-bold").count() == 0
    assert page.locator("article.failure script, article.failure img").count() == 0
    # the model's name is hostile too: signatures draw it in SVG, tables and selects
    _open(page, site, "/signatures/", source="judge", taxonomy=DEFAULT)
    groups = page.eval_on_selector_all("section.signature", "els => els.map(e => e.dataset.group)")
    assert PROBE_MODEL in groups
    assert page.locator("main img").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert events["dialogs"] == [] and events["errors"] == []


def test_agreement_and_judge_pages_show_the_commands_numbers(browser):
    page, _, site = browser
    agreement = _json(site, "agreement", "--json", "--taxonomy", MQM, "--reps", "20")
    _open(page, site, "/agreement/", taxonomy=MQM)
    first = _full(page, "#agreement-stats")[1]
    assert _cells(page, "#agreement-stats")[1][0] == "Krippendorff's alpha"
    assert float(first[1]) == pytest.approx(agreement["krippendorff_alpha"], abs=1e-9)
    audit = _json(site, "judge_audit", "--json", "--taxonomy", DEFAULT)
    _open(page, site, "/judge/", taxonomy=DEFAULT)
    section = page.locator(f"section.judge-audit[data-judge='{JUDGE}']")
    accuracy = audit["judges"][JUDGE]["vs_human_majority"]["accuracy"]
    assert float(section.locator(".judge-accuracy").first.get_attribute("title")) == pytest.approx(accuracy, abs=1e-9)
    assert section.locator(".judge-accuracy").first.inner_text().endswith("%")
    # the confusion matrix and the reliability diagram are shown, not folded away
    assert section.locator("table.confusion").first.is_visible()
    assert section.locator("svg.reliability").first.is_visible()


def test_report_opens_offline_with_the_same_numbers(browser, tmp_path):
    page, _, site = browser
    out = tmp_path / "report"
    manage(site["var"], "report", str(out), "--taxonomy", MQM)
    data = json.loads((out / "data.json").read_text())
    requested = []

    def block_network(route):
        requested.append(route.request.url)
        route.abort()

    page.route("http*://**/*", block_network)
    try:
        page.goto((out / "signatures-human-by-model.html").as_uri())
        rows = _full(page, "#heatmap-table")[1:]
        expected = data["signatures"]["human/model"]["heatmap"]
        assert [r[0] for r in rows] == expected["groups"]
        assert [float(x) for x in rows[0][2:]] == pytest.approx(expected["shares"][0], abs=1e-9)
        page.goto((out / "index.html").as_uri())
        assert page.locator("a[href='atlas-human.html']").count() == 1
        # the judge audit of the taxonomy the judge and the humans share, with its version named
        manage(site["var"], "report", str(tmp_path / "report-default"), "--taxonomy", DEFAULT)
        page.goto((tmp_path / "report-default" / "judge.html").as_uri())
        assert page.locator("svg.reliability").count() >= 1 and page.locator("table.confusion").count() >= 1
        assert page.locator("#audit-taxonomy .taxonomy-version").inner_text() == DEFAULT
    finally:
        page.unroute("http*://**/*")
    assert requested == []
