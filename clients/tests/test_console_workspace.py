"""The console's workspace and knowledge pages in a real browser (Playwright driving Chromium).

A connection to a local API and a flow from it, made with the workspace command language;
then Flows → **Run now** and the run page following the run to its end, **Cancel** of a long
run, Connections → **Test**, Schedules → **Disable** / **Enable**, Knowledge search, a support
ticket whose subject holds a ``<script>`` (shown as text), the Templates gallery → **Import**,
and what a viewer sees on a phone-sized screen.

The pages get their own server (a fresh data dir), allowed to reach this machine's services.
Screenshots for docs/console.md go to ``$CONSOLE_SCREENSHOT_DIR`` when it is set
(``CONSOLE_SCREENSHOT_DIR=$PWD/docs/console python3 -m pytest
clients/tests/test_console_workspace.py``).
"""

import json
import os
import re
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from conftest import Server, server_binary
from test_console import (  # noqa: F401  (fixtures, found by name)
    _browser_missing,
    browser,
    expect,
    page,
    shot,
    sign_in,
    signed_in_admin,
    user_with_password,
)

LOCAL_SERVICES = {"INTEGRATOR_EGRESS_ALLOW": "127.0.0.0/8,::1"}
SLOW_PAGES = 8
SLOW_DELAY = 0.4


class _LocalApi:
    """A JSON API on this machine: ``/`` (one record, what Test reads), ``/slow`` (eight
    pages of two records, 0.4 s each) and ``/endless`` (pages for ever, 0.3 s each)."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlparse(self.path)
                number = int((parse_qs(url.query).get("page") or ["1"])[0])
                if url.path == "/slow":
                    time.sleep(SLOW_DELAY)
                    records = [] if number > SLOW_PAGES else [
                        {"id": number * 10 + i, "name": "item %d.%d" % (number, i)}
                        for i in range(2)]
                elif url.path == "/endless":
                    time.sleep(0.3)
                    records = [{"id": number * 10 + i, "name": "more"} for i in range(2)]
                else:
                    records = [{"id": 0, "name": "hello"}]
                body = json.dumps({"data": records}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def console(upstream):
    """This module's server, with a workspace: connections to a local API and a lake, flows
    between them, and a schedule."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CONSOLE_BROWSER_REQUIRED"):
            pytest.fail(missing)
        pytest.skip(missing)
    binary = server_binary()
    if not binary.is_file():
        pytest.skip("server binary %s not found: run `cargo build -p server`" % binary)
    api = _LocalApi()
    tmp = tempfile.mkdtemp(prefix="integrator-console-workspace-tests-")
    running = Server(binary, upstream, Path(tmp) / "data", settings=LOCAL_SERVICES)
    for command in (
        'create connection api type=http url=%s records=data pagination=page page_size=2 '
        'header.Authorization="Bearer s3cret-token"' % api.url,
        "create connection lake type=sqlite path=lake.db",
        'create flow items from=api:/slow to=lake:items mode=replace map="id,name:title"',
        "create flow firehose from=api:/endless to=lake:firehose",
        "schedule flow items every=1h",
    ):
        running.cli("host", "--tenant", "default", command)
    yield running
    running.stop()
    api.close()
    shutil.rmtree(tmp, ignore_errors=True)


def workspace_nav(page, name):
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Workspace").click()
    page.get_by_role("navigation", name="Workspace").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def knowledge_nav(page, name):
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Knowledge").click()
    page.get_by_role("navigation", name="Knowledge").get_by_role("link", name=name).click()


# --------------------------------------------------------------------------------------- tests


def test_run_now_follows_the_run_to_its_end(console, page):
    signed_in_admin(console, page)
    workspace_nav(page, "Flows")
    row = page.get_by_role("row").filter(has_text="items")
    for shown in ("api:/slow", "lake:items", "replace", "id, name → title", "every 1h"):
        assert shown in row.inner_text(), row.inner_text()
    shot(page, "workspace-flows")

    # From the keyboard: focus Run now and press Enter.
    row.get_by_role("button", name="Run now").focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/console/runs/\d+$"))
    expect(page.get_by_role("heading", name=re.compile(r"Run \d+ of flow items"))).to_be_visible()
    status = page.locator("#run-status")
    # The run takes about four seconds: the page shows it running, then updates by itself.
    expect(status).to_have_text("running", timeout=5000)
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    expect(page.locator("#rows-read")).not_to_have_text("0", timeout=10000)
    shot(page, "workspace-run-running")
    expect(status).to_have_text("succeeded", timeout=30000)
    expect(page.locator("#rows-written")).to_have_text(str(SLOW_PAGES * 2))
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="The run succeeded.")).to_be_visible()
    log = page.locator("pre.log").inner_text()
    assert "page 1: GET" in log, log
    assert "s3cret-token" not in page.content()
    shot(page, "workspace-run")

    # The flow's page: its mapping and the run in its history.
    page.get_by_role("link", name="items", exact=True).click()
    expect(page.get_by_role("heading", name="Flow items")).to_be_visible()
    history = page.get_by_role("table").last.inner_text()
    assert "succeeded" in history and "admin@localhost" in history, history
    shot(page, "workspace-flow")
    assert not page.dialogs


def test_a_flow_made_in_chat_runs_from_its_page(console, page, upstream):
    """The agent creates a flow in the chat panel; the flow's page runs it, live."""
    signed_in_admin(console, page)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="AI Agent",
                                                                exact=True).click()
    page.get_by_role("button", name="New chat").click()
    box = page.get_by_label("Message")
    box.fill("[host] create flow chatmade from=api:/slow to=lake:chatmade mode=replace "
             "&& show flow chatmade")
    box.press("Enter")
    answer = page.locator("li.message.assistant").last
    expect(answer.locator(".bubble")).to_contain_text("Done: 2 commands.")
    expect(answer.locator("details.chip")).to_have_count(2)
    expect(answer.locator("details.chip").first).to_contain_text("host_cli")

    workspace_nav(page, "Flows")
    page.get_by_role("link", name="chatmade", exact=True).click()
    expect(page.get_by_role("heading", name="Flow chatmade")).to_be_visible()
    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(re.compile(r".*/console/runs/\d+$"))
    status = page.locator("#run-status")
    expect(status).to_have_text("running", timeout=5000)
    expect(page.locator("#rows-read")).not_to_have_text("0", timeout=10000)
    expect(status).to_have_text("succeeded", timeout=30000)
    expect(page.locator("#rows-written")).to_have_text(str(SLOW_PAGES * 2))


def test_cancel_stops_a_long_run(console, page):
    signed_in_admin(console, page)
    workspace_nav(page, "Flows")
    page.get_by_role("row").filter(has_text="firehose").get_by_role("button",
                                                                    name="Run now").click()
    page.wait_for_url(re.compile(r".*/console/runs/\d+$"))
    expect(page.locator("#rows-read")).not_to_have_text("0", timeout=10000)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=30000)
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    notice = page.locator(".notice").first.inner_text()
    assert "Cancelled run" in notice or "Asked run" in notice, notice
    workspace_nav(page, "Runs")
    assert "cancelled" in page.get_by_role("table").inner_text()
    shot(page, "workspace-runs")


def test_connections_test_and_secrets_masked(console, page):
    signed_in_admin(console, page)
    workspace_nav(page, "Connections")
    api = page.get_by_role("rowheader", name="api", exact=True)
    row = page.get_by_role("row").filter(has=api)
    assert "***" in row.inner_text() and "s3cret-token" not in page.content()
    row.get_by_role("button", name="Test").click()
    result = page.get_by_role("row").filter(has=api).get_by_role("status")
    expect(result).to_contain_text("works")
    expect(result).to_contain_text("1 record")
    shot(page, "workspace-connections")


def test_schedules_disable_and_enable(console, page):
    signed_in_admin(console, page)
    workspace_nav(page, "Schedules")
    row = page.get_by_role("row").filter(has_text="items")
    assert "every 1h" in row.inner_text() and "enabled" in row.inner_text()
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_text("Disabled the schedule of flow 'items'")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="items")
    expect(row.get_by_text("disabled", exact=True)).to_be_visible()
    assert "every 1h" in row.inner_text()
    shot(page, "workspace-schedules")
    row.get_by_role("button", name="Enable").click()
    expect(page.get_by_text("Enabled the schedule of flow 'items'")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="items")
    expect(row.get_by_role("button", name="Disable")).to_be_visible()


def test_knowledge_search_and_a_ticket_with_markup(console, page):
    signed_in_admin(console, page)
    knowledge_nav(page, "Search and tickets")
    page.get_by_label("Search docs, articles, templates and tickets").fill("pagination")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("region", name=re.compile("Results for"))
    expect(results.locator("li").first).to_be_visible()
    assert results.locator("mark").count() >= 1
    shot(page, "knowledge-search", full_page=False)

    subject = "<script>window.__xss=1</script> Import of orders fails"
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("Description").fill("Run 3 stops at page 2 <img src=x onerror=\"window.__xss=2\">")
    page.get_by_label("Priority").select_option("high")
    page.get_by_role("button", name="Create support ticket").click()
    expect(page.locator(".notice.ok")).to_have_text("Created the support ticket “%s”." % subject)
    expect(page.get_by_label("The new ticket")).to_contain_text("Priority: high")
    row = page.get_by_role("row").filter(has_text="Import of orders fails")
    expect(row.get_by_text(subject).first).to_be_visible()
    assert "open" in row.inner_text() and "high" in row.inner_text()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    shot(page, "knowledge-ticket")

    # Searchable at once, still as text.
    page.get_by_label("Search docs, articles, templates and tickets").fill("orders fails")
    page.get_by_label("In", exact=True).select_option("ticket")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("region", name=re.compile("Results for"))
    expect(results.get_by_role("link", name=subject)).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert not page.dialogs


def test_templates_gallery_import(console, page):
    signed_in_admin(console, page)
    knowledge_nav(page, "Templates")
    expect(page.get_by_role("heading", name="Templates", exact=True)).to_be_visible()
    shot(page, "templates", full_page=False)
    page.get_by_label("Find templates").fill("PostgreSQL")
    page.get_by_role("button", name="Search").click()
    card = page.locator("ul.gallery > li").first
    name = card.get_by_role("heading").inner_text()
    card.get_by_role("button", name="Import").click()
    imported = page.get_by_label("What the import created")
    expect(imported).to_contain_text("Imported template")
    expect(imported).to_contain_text(name)
    shot(page, "templates-import", full_page=False)
    page.get_by_role("link", name="Open the flows").click()
    expect(page.get_by_role("heading", name="Flows", exact=True)).to_be_visible()
    assert page.get_by_role("row").count() > 3


def test_a_viewer_sees_the_workspace_without_buttons(console, browser):
    user_with_password(console, "viewer@example.com", "viewer", "viewer password 1")
    context = browser.new_context(viewport={"width": 360, "height": 780})
    page = context.new_page()
    try:
        sign_in(page, console, "viewer@example.com", "viewer password 1")
        for path, heading in (("/console/flows", "Flows"), ("/console/connections", "Connections"),
                              ("/console/schedules", "Schedules"), ("/console/runs", "Runs"),
                              ("/console/templates", "Templates")):
            response = page.goto(console.url + path)
            assert response.status == 200, path
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            for button in ("Run now", "Test", "Disable", "Enable", "Import", "Cancel"):
                assert page.get_by_role("button", name=button).count() == 0, (path, button)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, (path, width)
            if path == "/console/flows":
                assert "api:/slow" in page.locator("main").inner_text()
                shot(page, "workspace-flows-360px")
        page.goto(console.url + "/console/knowledge")
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        # A viewer's POST is refused, even with the session's own token.
        csrf = page.locator("input[name=csrf]").first.get_attribute("value")
        refused = page.request.post(console.url + "/console/flows/items/run",
                                    form={"csrf": csrf}, headers={"Origin": console.url})
        assert refused.status == 403
    finally:
        context.close()
