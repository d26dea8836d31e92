"""The web console in a real browser (Playwright driving Debian's Chromium).

The seeds' Step 1 done by hand: sign in, Settings → Users, open a user, Generate API Key with a
30-day expiration, read the key once, use it with an HTTP client, revoke it. Then the dashboard
after two chats, what a viewer may reach, and CSRF and XSS attempts.

The console gets its own server (a fresh data dir, so the first start prints the sign-in link).
Screenshots for docs/console.md go to ``$CONSOLE_SCREENSHOT_DIR`` when it is set
(``CONSOLE_SCREENSHOT_DIR=docs/console python3 -m pytest clients/tests/test_console.py``).
"""

import os
import re
import shutil
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail) with the reason
    expect = None

from conftest import Server, server_binary

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ADMIN_EMAIL = "admin@localhost"
ADMIN_PASSWORD = "correct horse battery staple"
TOOLS = "/rest/v1/ai-agent/api/tools"


def _browser_missing():
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed"
    if not Path(CHROMIUM).exists():
        return "no Chromium at %s (apt-get install chromium)" % CHROMIUM
    return None


@pytest.fixture(scope="module")
def console(upstream):
    missing = _browser_missing()
    if missing:
        if os.environ.get("CONSOLE_BROWSER_REQUIRED"):
            pytest.fail(missing)
        pytest.skip(missing)
    binary = server_binary()
    if not binary.is_file():
        pytest.skip("server binary %s not found: run `cargo build -p server`" % binary)
    tmp = tempfile.mkdtemp(prefix="integrator-console-tests-")
    running = Server(binary, upstream, Path(tmp) / "data")
    yield running
    running.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.dialogs = dialogs
    yield opened
    context.close()


def shot(page, name, full_page=True):
    """Saves a screenshot for docs/console.md when CONSOLE_SCREENSHOT_DIR is set."""
    folder = os.environ.get("CONSOLE_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / ("%s.png" % name)), full_page=full_page)


def admin_password(console, page):
    """Sets the super-admin's password through the first start's link (once per server)."""
    if getattr(console, "password_set", False):
        return
    assert console.sign_in_link, "the first start printed no sign-in link"
    page.goto(console.sign_in_link)
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    shot(page, "set-password")
    page.get_by_label("New password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("New password again").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("heading", name="Password set")).to_be_visible()
    console.password_set = True
    # The link works once.
    page.goto(console.sign_in_link)
    expect(page.get_by_role("heading", name="This link can't be used")).to_be_visible()


def sign_in(page, console, email, password):
    page.goto(console.url + "/")
    assert page.url.endswith("/console/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/console$"))


def signed_in_admin(console, page):
    admin_password(console, page)
    sign_in(page, console, ADMIN_EMAIL, ADMIN_PASSWORD)


def user_with_password(console, email, role, password, tenant="default"):
    console.cli("user", "create", email, "--tenant", tenant, "--role", role, check=False)
    result = subprocess_input(console, ["user", "set-password", email], password + "\n")
    assert result.returncode == 0, result.stderr


def subprocess_input(console, args, text):
    import subprocess

    return subprocess.run([str(console.binary)] + args + ["--data-dir", str(console.data_dir)],
                          input=text, capture_output=True, text=True, env=console.env,
                          timeout=60)


def tools_status(console, key):
    return requests.get(console.url + TOOLS, headers={"Authorization": "Bearer " + key},
                        timeout=30).status_code


# --------------------------------------------------------------------------------------- tests


def test_seeds_step_one_in_the_browser(console, page):
    """Sign in, Settings → Users, Generate API Key (30 days), use it, revoke it."""
    page.goto(console.url + "/")
    shot(page, "sign-in")
    signed_in_admin(console, page)
    console.cli("user", "create", "dev@example.com", "--tenant", "default", "--role", "user")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Settings → Users").click()
    expect(page.get_by_role("heading", name="Settings → Users")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="dev@example.com")
    assert "none" in row.inner_text()
    shot(page, "users")

    page.get_by_role("link", name="dev@example.com").click()
    expect(page.get_by_role("heading", name="Edit user: dev@example.com")).to_be_visible()
    expect(page.get_by_role("heading", name="API Key")).to_be_visible()
    page.get_by_label("Label (optional)").fill("laptop")
    page.get_by_label("Expiration", exact=True).select_option(label="30 days")
    page.get_by_role("button", name="Generate API Key").click()

    warning = page.get_by_text("Copy the key immediately — it won't be shown again.")
    expect(warning).to_be_visible()
    key = page.locator("#new-key").inner_text().strip()
    assert re.fullmatch(r"[A-Za-z0-9]{200,}", key), key
    expiry = page.get_by_role("region", name="Your new API key").inner_text()
    in_30_days = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 30 * 86400))
    assert "It expires on %s" % in_30_days in expiry, expiry
    expect(page.get_by_role("button", name="Copy key")).to_be_visible()
    shot(page, "api-key")

    # The key is shown once: reloading the user shows its status, never the key.
    page.goto(page.url.split("/keys")[0])
    assert key not in page.content()
    expect(page.get_by_role("row").filter(has_text="laptop").get_by_text("active")).to_be_visible()

    # The seeds' curl: the key lists the tools.
    answer = requests.get(console.url + TOOLS, headers={"Authorization": "Bearer " + key},
                          timeout=30)
    assert answer.status_code == 200, answer.text
    assert any(t["name"] == "search_knowledge_base" for t in answer.json()["tools"])

    page.get_by_role("row").filter(has_text="laptop").get_by_role("button",
                                                                  name="Revoke").click()
    expect(page.get_by_role("alertdialog")).to_be_visible()
    shot(page, "revoke")
    page.get_by_role("alertdialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("row").filter(has_text="laptop").get_by_text("revoked")).to_be_visible()

    deadline = time.monotonic() + 5
    while tools_status(console, key) != 401:
        assert time.monotonic() < deadline, "the revoked key still works after 5 s"
        time.sleep(0.1)

    page.get_by_role("link", name="← Settings → Users").click()
    row = page.get_by_role("row").filter(has_text="dev@example.com")
    assert "revoked" in row.inner_text()

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    log = page.locator("table").inner_text()
    assert "key generated" in log and "key revoked" in log, log
    shot(page, "audit")
    assert not page.dialogs


def test_dashboard_shows_two_chats(console, page):
    for message in ("first chat", "second chat"):
        answer = requests.post(console.url + "/rest/v1/ai-agent/api/chat",
                               headers={"Authorization": "Bearer " + console.admin_key},
                               json={"message": message}, timeout=60)
        assert answer.status_code == 200, answer.text

    signed_in_admin(console, page)
    expect(page.get_by_role("heading", name="AI Agent dashboard")).to_be_visible()
    cost = page.get_by_role("region", name="This month").locator(".figure").inner_text()
    assert cost.startswith("$") and re.search(r"[1-9]", cost), cost
    expect(page.locator("progress")).to_be_visible()
    bars = page.locator("svg.chart rect.managed")
    assert bars.count() >= 1
    by_model = page.locator("table").nth(1).inner_text()
    assert "gpt-test" in by_model, by_model
    by_user = page.locator("table").nth(0).inner_text()
    assert ADMIN_EMAIL in by_user, by_user
    assert "default" in page.locator("table").last.inner_text()
    shot(page, "dashboard")

    # The same figures as GET /usage.
    usage = requests.get(console.url + "/rest/v1/ai-agent/api/usage",
                         headers={"Authorization": "Bearer " + console.admin_key},
                         timeout=30).json()
    assert usage["tenant"]["prompt_tokens"] >= 200
    tokens = page.get_by_role("region", name="This month").locator("p").inner_text()
    total = usage["tenant"]["prompt_tokens"] + usage["tenant"]["completion_tokens"]
    assert tokens.startswith("%d tokens" % total), (tokens, total)


def test_billing_top_up_and_downloads(console, page):
    signed_in_admin(console, page)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Billing").click()
    page.get_by_label("Amount (USD)").fill("25")
    page.get_by_role("button", name="Top up wallet").click()
    expect(page.get_by_text("$25.00").first).to_be_visible()
    history = page.locator("table").inner_text()
    assert "$25.00" in history and ADMIN_EMAIL in history, history
    shot(page, "billing")

    page.get_by_role("navigation", name="Console").get_by_role("link", name="Downloads").click()
    listing = page.locator("main").inner_text()
    for script in ("etlworks_agent.py", "etlworks-agent.sh", "etlworks-agent.ps1"):
        assert script in listing, listing
    shot(page, "downloads")
    with page.expect_download() as download:
        page.get_by_role("link", name="etlworks_agent.py").first.click()
    assert download.value.suggested_filename == "etlworks_agent.py"


def test_a_viewer_cannot_reach_users(console, browser):
    user_with_password(console, "viewer@example.com", "viewer", "viewer password 1")
    context = browser.new_context(viewport={"width": 360, "height": 780})
    page = context.new_page()
    try:
        sign_in(page, console, "viewer@example.com", "viewer password 1")
        assert page.get_by_role("link", name="Settings → Users").count() == 0
        response = page.goto(console.url + "/console/users")
        assert response.status == 403
        expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
        response = page.goto(console.url + "/console/billing")
        assert response.status == 403
        page.goto(console.url + "/console/profile")
        expect(page.get_by_text("viewer@example.com").first).to_be_visible()
        # Readable at 360 px: nothing wider than the screen.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, width
        shot(page, "profile-360px")
    finally:
        context.close()


def test_keyboard_sign_in_and_sign_out(console, browser):
    admin_password(console, browser.new_page())
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(console.url + "/console/sign-in")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.name") == "email"
        page.keyboard.type(ADMIN_EMAIL)
        page.keyboard.press("Tab")
        page.keyboard.type(ADMIN_PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/console$"))
        cookie = [c for c in context.cookies() if c["name"] == "ia_session"][0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile(r".*/console/sign-in$"))
        # The old session token no longer opens a page.
        stale = requests.get(console.url + "/console", allow_redirects=False, timeout=30,
                             cookies={"ia_session": cookie["value"]})
        assert stale.status_code == 303 and stale.headers["location"] == "/console/sign-in"
    finally:
        context.close()


class _AttackerSite:
    """Another origin serving a page with a form that posts to the console by itself."""

    def __init__(self, target):
        page = ("<!doctype html><form id=f method=post action='%s/console/users'>"
                "<input name=csrf value=guess><input name=email value=evil@example.com>"
                "<input name=role value=admin><input name=api_access value=on></form>"
                "<script>document.getElementById('f').submit()</script>" % target).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_csrf_attempts_fail(console, page):
    signed_in_admin(console, page)
    attacker = _AttackerSite(console.url)
    try:
        page.goto(attacker.url)
        page.wait_for_load_state()
        page.wait_for_timeout(500)
        assert "another site" in page.content() or "expired" in page.content()
    finally:
        attacker.close()
    # Same origin but without the session's token: refused too.
    forged = page.request.post(console.url + "/console/users",
                               form={"csrf": "guess", "email": "evil2@example.com",
                                     "role": "admin"},
                               headers={"Origin": console.url})
    assert forged.status == 403
    page.goto(console.url + "/console/users")
    users = page.locator("table").inner_text()
    assert "evil" not in users, users


def test_xss_attempts_render_as_text(console, page):
    signed_in_admin(console, page)
    console.cli("user", "create", "xss@example.com", "--tenant", "default", "--role", "user",
                check=False)
    page.goto(console.url + "/console/users")
    page.get_by_role("link", name="xss@example.com").click()
    payload = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">"
    page.get_by_label("Label (optional)").fill(payload[:80])
    page.get_by_role("button", name="Generate API Key").click()
    expect(page.locator("#new-key")).to_be_visible()
    page.goto(page.url.split("/keys")[0])
    expect(page.get_by_text(payload[:80]).first).to_be_visible()
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    # A user's email with markup is refused by the server, or shown as text.
    created = console.cli("user", "create", "<img src=x onerror=alert(1)>@example.com",
                          "--tenant", "default", check=False)
    page.goto(console.url + "/console/users")
    if created.returncode == 0:
        expect(page.get_by_text("<img src=x onerror=alert(1)>@example.com")).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    assert not page.dialogs
