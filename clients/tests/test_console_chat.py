"""The console's AI Agent chat panel in a real browser (Playwright driving Chromium).

A streamed answer with a tool chip, token by token (the scripted upstream's ``[tool]`` and
``[slow]`` answers); **Stop** keeping the partial answer; a reload in the middle of an answer
showing it whole without sending the message again; the settings icon setting an own OpenAI
key that the upstream then receives; markup in an answer staying text; what a viewer sees.

The panel gets its own server (a fresh data dir). Screenshots for docs/console.md go to
``$CONSOLE_SCREENSHOT_DIR`` when it is set.
"""

import re
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import SLOW_TOKENS, Server, server_binary
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

OWN_KEY = "sk-own-console-test-4321"


@pytest.fixture(scope="module")
def console(upstream):
    missing = _browser_missing()
    if missing:
        import os

        if os.environ.get("CONSOLE_BROWSER_REQUIRED"):
            pytest.fail(missing)
        pytest.skip(missing)
    binary = server_binary()
    if not binary.is_file():
        pytest.skip("server binary %s not found: run `cargo build -p server`" % binary)
    tmp = tempfile.mkdtemp(prefix="integrator-console-chat-")
    running = Server(binary, upstream, Path(tmp) / "data")
    yield running
    running.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def new_chat(page, console):
    signed_in_admin(console, page)
    page.get_by_role("navigation", name="Console").get_by_role("link", name="AI Agent",
                                                                exact=True).click()
    page.get_by_role("button", name="New chat").click()
    page.wait_for_url(re.compile(r".*/console/chat/[0-9a-f-]{36}$"))
    expect(page.get_by_label("Message")).to_be_visible()


def say(page, text):
    box = page.get_by_label("Message")
    box.fill(text)
    box.press("Enter")


def last_answer(page):
    return page.locator("li.message.assistant").last


def test_a_streamed_answer_shows_its_tool_chip_and_tokens(console, page, upstream):
    new_chat(page, console)
    say(page, "[tool] how do I connect a REST API?")
    answer = last_answer(page)
    chip = answer.locator("details.chip")
    expect(chip).to_contain_text("search_knowledge_base")
    expect(answer.locator(".bubble")).to_contain_text("Found it: the knowledge base answered.")
    expect(chip.locator("summary")).to_have_text(re.compile(r"search_knowledge_base · \d+\.\d s"))
    chip.locator("summary").click()
    expect(chip.locator("pre").first).to_contain_text('"query": "x"')
    expect(chip.locator("pre").last).to_contain_text("knowledge base")
    expect(answer.locator(".meta")).to_contain_text("tokens")
    expect(answer.locator(".meta")).to_contain_text("$")
    shot(page, "chat")

    # Token by token: a slow answer grows while it streams.
    say(page, "[slow] count for me")
    bubble = last_answer(page).locator(".bubble")
    expect(bubble).to_contain_text("tick1 ")
    partial = bubble.inner_text()
    assert "tick%d" % (SLOW_TOKENS - 1) not in partial, partial
    expect(bubble).to_contain_text("tick%d" % (SLOW_TOKENS - 1), timeout=15000)
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()


def test_stop_keeps_the_partial_answer(console, page):
    new_chat(page, console)
    say(page, "[slow] please stop me")
    bubble = last_answer(page).locator(".bubble")
    expect(bubble).to_contain_text("tick2 ")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("button", name="Stop")).to_be_hidden(timeout=10000)
    kept = last_answer(page).locator(".bubble").inner_text()
    assert "tick0" in kept and "tick%d" % (SLOW_TOKENS - 1) not in kept, kept
    page.reload()
    expect(last_answer(page).locator(".bubble")).to_contain_text("tick0")
    expect(last_answer(page)).to_contain_text("Stopped before the end.")


def test_a_reload_mid_answer_shows_it_whole_without_asking_again(console, page, upstream):
    new_chat(page, console)
    message = "[slow] survive a reload"
    say(page, message)
    expect(last_answer(page).locator(".bubble")).to_contain_text("tick1 ")
    page.reload()
    bubble = last_answer(page).locator(".bubble")
    expect(bubble).to_contain_text("tick%d" % (SLOW_TOKENS - 1), timeout=15000)
    text = bubble.inner_text()
    for n in range(SLOW_TOKENS):
        assert text.count("tick%d " % n) == 1 or text.count("tick%d" % n) == 1, text
    user_messages = page.locator("li.message.user").filter(has_text=message)
    assert user_messages.count() == 1
    assert len(upstream.requests_with(message)) == 1, "the message was sent once"


def test_the_settings_icon_sets_an_own_openai_key(console, page, upstream):
    new_chat(page, console)
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_role("heading", name="OpenAI API key")).to_be_visible()
    page.get_by_role("textbox", name=re.compile("OpenAI API key")).fill(OWN_KEY)
    page.get_by_role("button", name="Save key").click()
    expect(page.get_by_text("sk-…4321")).to_be_visible()
    shot(page, "chat-settings")
    page.get_by_role("link", name="Close settings").click()
    say(page, "who pays for this one")
    expect(last_answer(page).locator(".bubble")).to_contain_text("Echo: who pays for this one")
    seen = upstream.requests_with("who pays for this one")
    assert seen and seen[-1]["authorization"] == "Bearer " + OWN_KEY, seen
    # Removed again, the server's key is used.
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_role("button", name=re.compile("Remove")).click()
    expect(page.get_by_text("No own key is set")).to_be_visible()


def test_markup_in_an_answer_stays_text(console, page):
    new_chat(page, console)
    payload = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\"> **bold**"
    say(page, payload)
    bubble = last_answer(page).locator(".bubble")
    expect(bubble).to_contain_text("<script>window.__xss=1</script>")
    expect(bubble.locator("strong")).to_have_text("bold")
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0
    page.reload()
    expect(last_answer(page).locator(".bubble")).to_contain_text("<script>window.__xss=1</script>")
    assert page.evaluate("window.__xss") is None
    assert not page.dialogs


def test_a_viewer_chats_but_cannot_change_the_key(console, browser):
    user_with_password(console, "reader@example.com", "viewer", "reader password 1")
    context = browser.new_context(viewport={"width": 360, "height": 780})
    viewer = context.new_page()
    try:
        sign_in(viewer, console, "reader@example.com", "reader password 1")
        viewer.goto(console.url + "/console/chat?settings=1")
        expect(viewer.get_by_text("Only admins (for their tenant)")).to_be_visible()
        assert viewer.get_by_role("button", name="Save key").count() == 0
        forged = viewer.request.post(console.url + "/console/own-key",
                                     form={"csrf": "guess", "api_key": "sk-forged-key-1"})
        assert forged.status == 403
        viewer.get_by_role("button", name="New chat").click()
        say(viewer, "hello from a phone")
        expect(last_answer(viewer).locator(".bubble")).to_contain_text("Echo: hello from a phone")
        width = viewer.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, width
        shot(viewer, "chat-360px")
    finally:
        context.close()
