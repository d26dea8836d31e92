"""The MCP server at ``/mcp`` (Streamable HTTP), with the real ``mcp`` Python SDK.

Tools (the six REST tools and ``ask_agent``), progress, cancellation and resumption of ``ask_agent``,
resources (the knowledge base's documents and the template catalog), sessions shared with the
REST API, authentication and protocol versions; and every example of ``docs/mcp.md``, run as
written with only the server's address and the API key changed.

The tests talk through the SDK's ``ClientSession`` over ``streamable_http_client``; it asks
for protocol 2025-11-25. Where the wire matters (401s, version negotiation) they POST JSON-RPC
with ``requests``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import asynccontextmanager

import pytest
import requests

from conftest import MODEL, REPO, SLOW_TOKENS, fenced_blocks

pytest.importorskip("mcp", reason="the mcp package is not installed (pip install mcp)")

import anyio  # noqa: E402  (installed with mcp)
import httpx  # noqa: E402
from mcp import ClientSession, McpError, StdioServerParameters, types  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

API = "/rest/v1/ai-agent/api"
ACCEPT = "application/json, text/event-stream"
REST_TOOLS = ["search_knowledge_base", "search_templates", "create_support_ticket",
              "host_list_commands", "host_cli", "import_template"]
TOOL_ANSWER = "Found it: the knowledge base answered."
SLOW_ANSWER = "".join("tick%d " % i for i in range(SLOW_TOKENS))
DOC = REPO / "docs" / "mcp.md"
DOC_URL = "http://127.0.0.1:8080"


@pytest.fixture
def anyio_backend():
    return "asyncio"


# ----------------------------------------------------------------------------- REST helpers


def rest(server, key, method, path, **kwargs):
    return requests.request(method, server.url + API + path, timeout=60,
                            headers={"Authorization": "Bearer " + key}, **kwargs)


def create_session(server, key):
    response = rest(server, key, "POST", "/sessions")
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


def session_messages(server, key, session_id):
    response = rest(server, key, "GET", "/sessions/%s/messages" % session_id)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_interrupted_answer(server, key, session_id, timeout=10):
    """The session's last assistant message once it is marked interrupted (polls)."""
    deadline = time.monotonic() + timeout
    while True:
        messages = session_messages(server, key, session_id)
        if messages and messages[-1]["role"] == "assistant" and messages[-1].get("interrupted"):
            return messages[-1]
        if time.monotonic() > deadline:
            raise AssertionError("no interrupted assistant message in %s: %r"
                                 % (session_id, messages))
        time.sleep(0.1)


# ------------------------------------------------------------------------ raw JSON-RPC POSTs


def initialize_request(version, request_id=1):
    return {"jsonrpc": "2.0", "id": request_id, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {},
                       "clientInfo": {"name": "pytest", "version": "1.0"}}}


def post_mcp(url, message, key=None, headers=None):
    """POSTs one JSON-RPC message to ``url`` the way a Streamable HTTP client does."""
    sent = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if key is not None:
        sent["Authorization"] = "Bearer " + key
    sent.update(headers or {})
    return requests.post(url, json=message, headers=sent, timeout=30, stream=True)


def jsonrpc_answer(response, request_id):
    """The answer to ``request_id`` in a POST's response: a JSON body, or an SSE ``data:`` event
    of a ``text/event-stream`` body (read up to that event only; events without data, such as
    a priming event that only sets an id, are skipped)."""
    if not response.headers.get("Content-Type", "").startswith("text/event-stream"):
        return response.json()
    response.encoding = "utf-8"
    data = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("data:"):
            value = line[len("data:"):]
            data.append(value[1:] if value.startswith(" ") else value)
        elif line == "" and data:
            text, data = "\n".join(data), []
            if not text.strip():
                continue
            message = json.loads(text)
            if message.get("id") == request_id and ("result" in message or "error" in message):
                response.close()
                return message
    raise AssertionError("the stream ended without an answer to request %r" % request_id)


# --------------------------------------------------------------------------- the MCP client


def sole_error(error):
    """The one exception inside (nested) exception groups, or ``None`` when there are more."""
    while len(getattr(error, "exceptions", ())) == 1:
        error = error.exceptions[0]
    return None if hasattr(error, "exceptions") else error


def http_client(headers):
    return httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30, read=120))


@asynccontextmanager
async def mcp_session(url, headers, message_handler=None):
    """An initialized ``ClientSession`` to ``url`` over Streamable HTTP. A failure inside it is
    raised as itself, not wrapped in the SDK's task groups' exception groups."""
    http = http_client(headers)
    try:
        async with http, streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write, message_handler=message_handler) as session:
                await session.initialize()
                yield session
    except BaseException as error:
        sole = sole_error(error)
        if sole is None or sole is error:
            raise
        raise sole from None


def connect(server, key, message_handler=None):
    return mcp_session(server.url + "/mcp", {"Authorization": "Bearer " + key}, message_handler)


class Progress:
    """A ``progress_callback`` that records each notification's ``progress`` and ``message``."""

    def __init__(self):
        self.values = []
        self.messages = []

    async def __call__(self, progress, total, message):
        self.values.append(progress)
        self.messages.append(message or "")

    @property
    def text(self):
        """The ``text: `` pieces, concatenated."""
        return "".join(m[len("text: "):] for m in self.messages if m.startswith("text: "))

    def events(self):
        """The messages that are not answer text, in order."""
        return [m for m in self.messages if not m.startswith("text: ")]


def text_of(result):
    return "".join(block.text for block in result.content if block.type == "text")


async def all_pages(list_page, field):
    """Every item of a paginated MCP list, following ``nextCursor``."""
    items, cursor = [], None
    for _ in range(1000):
        page = await list_page(params=types.PaginatedRequestParams(cursor=cursor))
        items += getattr(page, field)
        cursor = page.nextCursor
        if cursor is None:
            return items
    raise AssertionError("the %s list never stopped returning a nextCursor" % field)


async def all_tools(session):
    return {tool.name: tool for tool in await all_pages(session.list_tools, "tools")}


async def all_resources(session):
    return await all_pages(session.list_resources, "resources")


async def ask(session, message, session_id=None, progress=None):
    arguments = {"message": message}
    if session_id is not None:
        arguments["session_id"] = session_id
    return await session.call_tool("ask_agent", arguments, progress_callback=progress)


def assert_failure(result, code):
    assert result.isError is True, result
    assert text_of(result).startswith(code + ":"), text_of(result)


# ------------------------------------------------------------------ authentication, versions


def test_without_a_key_mcp_answers_401_with_a_bearer_challenge(server):
    response = post_mcp(server.url + "/mcp", initialize_request("2025-11-25"))
    assert response.status_code == 401
    assert response.headers.get("WWW-Authenticate", "").startswith("Bearer")
    body = response.json()
    assert body["code"] == "missing_api_key" and body.get("success", False) is False
    assert isinstance(body["error"], str) and body["error"]


def test_a_wrong_key_is_401_invalid_api_key(server):
    response = post_mcp(server.url + "/mcp", initialize_request("2025-11-25"), key="x" * 64)
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_api_key"


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18", "2025-03-26"])
def test_initialize_agrees_to_the_version_the_client_asks_for(server, version):
    response = post_mcp(server.url + "/mcp", initialize_request(version, 7),
                        key=server.admin_key)
    assert response.status_code == 200, response.text
    answer = jsonrpc_answer(response, 7)
    assert answer["jsonrpc"] == "2.0" and answer["id"] == 7
    result = answer["result"]
    assert result["protocolVersion"] == version
    assert {"tools", "resources"} <= set(result["capabilities"])
    assert result["serverInfo"]["name"]


def test_an_unknown_version_is_answered_with_the_preferred_one(server):
    response = post_mcp(server.url + "/mcp", initialize_request("2024-01-01"),
                        key=server.admin_key)
    assert jsonrpc_answer(response, 1)["result"]["protocolVersion"] == "2025-11-25"


def test_an_unknown_method_is_method_not_found(server):
    """What newer SDKs rely on: they probe ``server/discover`` before ``initialize`` and fall
    back to the handshake when the method is unknown."""
    url = server.url + "/mcp"
    opened = post_mcp(url, initialize_request("2025-11-25"), key=server.admin_key)
    jsonrpc_answer(opened, 1)
    session = {"Mcp-Session-Id": opened.headers["Mcp-Session-Id"]} \
        if "Mcp-Session-Id" in opened.headers else {}
    post_mcp(url, {"jsonrpc": "2.0", "method": "notifications/initialized"},
             key=server.admin_key, headers=session).close()
    response = post_mcp(url, {"jsonrpc": "2.0", "id": 2, "method": "no/such_method"},
                        key=server.admin_key, headers=session)
    assert jsonrpc_answer(response, 2)["error"]["code"] == -32601


@pytest.mark.anyio
async def test_the_sdk_handshake_negotiates_2025_11_25(server):
    http = http_client({"Authorization": "Bearer " + server.admin_key})
    async with http, streamable_http_client(server.url + "/mcp", http_client=http) as (
            read, write, _):
        async with ClientSession(read, write) as session:
            result = await session.initialize()
    assert result.protocolVersion == "2025-11-25"
    assert result.capabilities.tools is not None
    assert result.capabilities.resources is not None
    assert result.serverInfo.name


# ------------------------------------------------------------------------------------ tools


@pytest.mark.anyio
async def test_tools_are_the_rest_tools_with_their_schemas_and_ask_agent(server):
    listed = rest(server, server.admin_key, "GET", "/tools").json()["tools"]
    async with connect(server, server.admin_key) as session:
        tools = await all_tools(session)
    assert sorted(tools) == sorted(REST_TOOLS + ["ask_agent"])
    for rest_tool in listed:
        assert tools[rest_tool["name"]].inputSchema == rest_tool["parameters"], rest_tool["name"]
        assert tools[rest_tool["name"]].description


@pytest.mark.anyio
async def test_ask_agent_takes_a_message_and_an_optional_session_id(server):
    async with connect(server, server.admin_key) as session:
        schema = (await all_tools(session))["ask_agent"].inputSchema
    assert schema["type"] == "object"
    assert schema["properties"]["message"]["type"] == "string"
    assert schema["properties"]["session_id"]["type"] == "string"
    assert schema["required"] == ["message"]


@pytest.mark.anyio
async def test_tool_annotations_say_what_reads_and_what_destroys(server):
    async with connect(server, server.admin_key) as session:
        tools = await all_tools(session)
    for name in ("search_knowledge_base", "search_templates", "host_list_commands"):
        assert tools[name].annotations.readOnlyHint is True, name
    assert tools["host_cli"].annotations.destructiveHint is True
    assert tools["create_support_ticket"].annotations.readOnlyHint is False


@pytest.mark.anyio
async def test_a_tool_returns_the_same_markdown_as_rest(server):
    arguments = {"query": "REST API connection"}
    expected = rest(server, server.admin_key, "POST", "/tools/search_knowledge_base/execute",
                    json=arguments).json()
    assert expected["success"] is True
    async with connect(server, server.admin_key) as session:
        result = await session.call_tool("search_knowledge_base", arguments)
    assert result.isError is False
    assert [block.type for block in result.content] == ["text"]
    assert text_of(result) == expected["result"]


@pytest.mark.anyio
@pytest.mark.parametrize("arguments, field", [({}, "query"),
                                              ({"query": "x", "limit": 50}, "limit")])
async def test_arguments_that_break_the_schema_are_an_error_naming_the_field(server, arguments,
                                                                            field):
    async with connect(server, server.admin_key) as session:
        result = await session.call_tool("search_knowledge_base", arguments)
    assert result.isError is True
    assert field in text_of(result)


@pytest.mark.anyio
async def test_an_unknown_tool_is_a_json_rpc_error(server):
    async with connect(server, server.admin_key) as session:
        with pytest.raises(McpError) as error:
            await session.call_tool("no_such_tool", {})
    assert "no_such_tool" in error.value.error.message


@pytest.mark.anyio
async def test_a_billed_tool_in_a_capped_tenant_is_cap_exceeded(server, capped_key, needs_billing):
    async with connect(server, capped_key) as session:
        assert_failure(await session.call_tool("host_list_commands", {}), "cap_exceeded")
        free = await session.call_tool("search_knowledge_base", {"query": "schedule"})
    assert free.isError is False, "free tools are never capped"


@pytest.mark.anyio
async def test_what_the_role_may_not_do_is_permission_denied(server):
    viewer = server.new_key("mcpviewers", "viewer@mcp.example.com", role="viewer")
    async with connect(server, viewer) as session:
        result = await session.call_tool(
            "host_cli", {"command": "create connection lake type=sqlite path=lake.db"})
    assert_failure(result, "permission_denied")


@pytest.mark.anyio
async def test_a_tool_that_fails_is_tool_failed(server):
    async with connect(server, server.admin_key) as session:
        result = await session.call_tool("host_cli", {"command": "run flow no_such_flow"})
    assert_failure(result, "tool_failed")


@pytest.mark.anyio
async def test_a_malformed_command_is_invalid_command(server):
    async with connect(server, server.admin_key) as session:
        result = await session.call_tool("host_cli", {"command": "lst flows"})
    assert_failure(result, "invalid_command")


# -------------------------------------------------------------------------------- ask_agent


@pytest.mark.anyio
async def test_ask_agent_answers_with_text_and_structured_content(server):
    async with connect(server, server.admin_key) as session:
        result = await ask(session, "hello over mcp")
    answer = "Echo: hello over mcp (1 messages)"
    assert result.isError is False
    assert text_of(result) == answer
    details = result.structuredContent
    assert set(details) == {"answer", "session_id", "tools_used", "usage"}
    assert details["answer"] == answer
    assert isinstance(details["session_id"], str) and details["session_id"]
    assert details["tools_used"] == []
    usage = details["usage"]
    assert isinstance(usage["prompt_tokens"], int) and usage["prompt_tokens"] > 0
    assert isinstance(usage["completion_tokens"], int) and usage["completion_tokens"] > 0
    assert usage["model"] == MODEL


@pytest.mark.anyio
async def test_ask_agent_reports_its_progress(server):
    progress = Progress()
    async with connect(server, server.admin_key) as session:
        result = await ask(session, "[tool] find it", progress=progress)
    assert text_of(result) == TOOL_ANSWER
    assert result.structuredContent["tools_used"] == ["search_knowledge_base"]
    events = progress.events()
    expected = ["phase: thinking", "tool_start: search_knowledge_base",
                "tool_end: search_knowledge_base", "phase: analyzing", "phase: preparing"]
    assert [e for e in events if e in expected] == expected, events
    assert set(events) <= set(expected), "only phases and tool events besides the text"
    assert progress.text == TOOL_ANSWER
    assert progress.values == sorted(set(progress.values)), "progress increases"
    assert progress.messages.index("phase: preparing") < progress.messages.index(
        next(m for m in progress.messages if m.startswith("text: ")))


@pytest.mark.anyio
async def test_ask_agent_in_a_capped_tenant_is_cap_exceeded(server, capped_key, needs_billing):
    async with connect(server, capped_key) as session:
        assert_failure(await ask(session, "hello"), "cap_exceeded")


@pytest.mark.anyio
async def test_ask_agent_sessions_are_rest_sessions(server):
    key = server.admin_key
    async with connect(server, key) as session:
        first = await ask(session, "first over mcp")
        session_id = first.structuredContent["session_id"]
        assert session_messages(server, key, session_id) == [
            {"role": "user", "content": "first over mcp"},
            {"role": "assistant", "content": "Echo: first over mcp (1 messages)"}]
        second = await ask(session, "second over mcp", session_id=session_id)
    assert text_of(second) == "Echo: second over mcp (3 messages)"
    assert second.structuredContent["session_id"] == session_id
    assert [m["role"] for m in session_messages(server, key, session_id)] == \
        ["user", "assistant", "user", "assistant"]


@pytest.mark.anyio
async def test_ask_agent_continues_a_session_started_over_rest(server):
    key = server.admin_key
    session_id = create_session(server, key)
    started = rest(server, key, "POST", "/sessions/%s/chat" % session_id,
                   json={"message": "begun over rest"})
    assert started.json()["response"] == "Echo: begun over rest (1 messages)"
    async with connect(server, key) as session:
        result = await ask(session, "continued over mcp", session_id=session_id)
    assert text_of(result) == "Echo: continued over mcp (3 messages)"
    assert result.structuredContent["session_id"] == session_id


@pytest.mark.anyio
async def test_another_users_session_is_not_found(server):
    session_id = create_session(server, server.admin_key)
    other = server.new_key("mcpothers", "other@mcp.example.com")
    async with connect(server, other) as session:
        assert_failure(await ask(session, "not mine", session_id=session_id), "not_found")
        assert_failure(await ask(session, "nobody's", session_id="no-such-session"),
                       "not_found")
    assert session_messages(server, server.admin_key, session_id) == []


def cancel_notification(request_id):
    return types.ClientNotification(types.CancelledNotification(
        params=types.CancelledNotificationParams(requestId=request_id, reason="stopped")))


@pytest.mark.anyio
async def test_cancelling_ask_agent_stops_the_turn(server):
    """The client sends ``notifications/cancelled`` for the call once the answer has begun.

    mcp 1.x does not send it when the awaiting task is cancelled, so the test sends it itself:
    the SDK's request id is the call's progress token, which every progress notification of
    the call carries."""
    key = server.admin_key
    session_id = create_session(server, key)
    answering = anyio.Event()
    request_ids = set()

    async def on_message(message):
        notification = getattr(message, "root", None)
        if isinstance(notification, types.ProgressNotification):
            request_ids.add(notification.params.progressToken)
            if (notification.params.message or "").startswith("text: "):
                answering.set()

    async with connect(server, key, message_handler=on_message) as session:
        async with anyio.create_task_group() as group:
            group.start_soon(ask, session, "[slow] stop me", session_id, Progress())
            with anyio.fail_after(30):
                await answering.wait()
            [request_id] = request_ids
            await session.send_notification(cancel_notification(request_id))
            group.cancel_scope.cancel()  # stop waiting: no answer comes to a cancelled request
        # Poll in a thread, so the session's transport keeps running meanwhile.
        message = await anyio.to_thread.run_sync(wait_for_interrupted_answer, server, key,
                                                 session_id)
    assert message["interrupted"] is True
    assert message["content"] != SLOW_ANSWER and SLOW_ANSWER.startswith(message["content"])


class CuttingProxy:
    """A TCP proxy in front of the server that breaks the connection carrying the first
    ``ask_agent`` call once ``after`` pieces of the answer have passed through it, as a flaky
    network or a proxy's timeout would; it records what the client sent afterwards."""

    def __init__(self, server, after=3):
        self.target = (server.url.split("//")[1].split(":")[0], int(server.url.rsplit(":", 1)[1]))
        self.after = after
        self.cut = False
        self.sent_after_cut = b""

    async def __aenter__(self):
        import asyncio
        self.listener = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.url = "http://127.0.0.1:%d" % self.listener.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.listener.close()

    async def handle(self, reader, writer):
        import asyncio
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        asking = asyncio.Event()

        async def upward():
            while data := await reader.read(65536):
                if self.cut:
                    self.sent_after_cut += data
                elif b"ask_agent" in data and b"tools/call" in data:
                    asking.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downward():
            pieces = 0
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
                if asking.is_set() and not self.cut:
                    pieces += data.count(b"text: ")
                    if pieces >= self.after:
                        self.cut = True
                        return

        tasks = [asyncio.ensure_future(upward()), asyncio.ensure_future(downward())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for stream in (writer, up_writer):
            stream.close()


@pytest.mark.anyio
async def test_a_broken_ask_agent_stream_is_resumed_by_the_sdk(server):
    """The connection breaks mid-answer; the SDK reconnects with ``Last-Event-ID`` (after the
    server's retry hint) and gets the rest: every piece once, and the result."""
    progress = Progress()
    async with CuttingProxy(server) as proxy:
        async with mcp_session(proxy.url + "/mcp",
                               {"Authorization": "Bearer " + server.admin_key}) as session:
            with anyio.fail_after(60):
                result = await ask(session, "[slow] keep going", progress=progress)
    assert proxy.cut, "the stream was broken mid-answer"
    assert b"last-event-id:" in proxy.sent_after_cut.lower(), "the SDK resumed the stream"
    assert text_of(result) == SLOW_ANSWER
    assert progress.text == SLOW_ANSWER, "each piece once, in order"


# -------------------------------------------------------------------------------- resources


def shipped_docs():
    return sorted(p.name for p in (REPO / "docs").glob("*.md") if p.name != "index.md")


def shipped_templates():
    templates = [json.loads(p.read_text(encoding="utf-8"))
                 for p in sorted((REPO / "templates").glob("*.json"))]
    return {str(t["id"]): t for t in templates}


@pytest.mark.anyio
async def test_resources_are_the_docs_and_the_templates(server):
    async with connect(server, server.admin_key) as session:
        resources = await all_resources(session)
    uris = [str(r.uri) for r in resources]
    assert len(uris) == len(set(uris)), "each resource once, across pages"
    docs = {str(r.uri): r for r in resources if str(r.uri).startswith("integrator://docs/")}
    templates = {str(r.uri): r for r in resources
                 if str(r.uri).startswith("integrator://templates/")}
    assert set(docs) >= {"integrator://docs/" + name for name in shipped_docs()}
    assert set(templates) == {"integrator://templates/" + i for i in shipped_templates()}
    assert {r.mimeType for r in docs.values()} == {"text/markdown"}
    assert {r.mimeType for r in templates.values()} == {"application/json"}
    assert all(r.name for r in resources)


@pytest.mark.anyio
async def test_reading_a_doc_gives_its_markdown(server):
    async with connect(server, server.admin_key) as session:
        read = await session.read_resource("integrator://docs/connection-http.md")
    [content] = read.contents
    assert str(content.uri) == "integrator://docs/connection-http.md"
    assert content.mimeType == "text/markdown"
    assert content.text == (REPO / "docs" / "connection-http.md").read_text(encoding="utf-8")


@pytest.mark.anyio
async def test_reading_a_template_gives_its_json(server):
    expected = shipped_templates()["1"]
    async with connect(server, server.admin_key) as session:
        read = await session.read_resource("integrator://templates/1")
    [content] = read.contents
    assert content.mimeType == "application/json"
    template = json.loads(content.text)
    assert (template["id"], template["name"]) == (expected["id"], expected["name"])


@pytest.mark.anyio
@pytest.mark.parametrize("uri", ["integrator://docs/no-such-page.md",
                                 "integrator://templates/99999", "https://example.com/x"])
async def test_an_unknown_resource_is_a_json_rpc_error(server, uri):
    async with connect(server, server.admin_key) as session:
        with pytest.raises(McpError):
            await session.read_resource(uri)


# ------------------------------------------------------------------ the docs, as written


def doc_blocks(language):
    """The fenced code blocks of docs/mcp.md in ``language``, in order."""
    return [code for lang, code in fenced_blocks(DOC) if lang == language]


def with_server(text, server, key):
    return text.replace(DOC_URL, server.url).replace("YOUR_API_KEY", key)


def configurations(server, key):
    """The doc's client configurations by client, with the test server's address and key."""
    found = {}
    for block in doc_blocks("json"):
        config = json.loads(with_server(block, server, key))
        if "servers" in config:
            found.setdefault("vscode", []).append(config["servers"]["integrator-agent"])
        elif "mcpServers" in config:
            entry = config["mcpServers"]["integrator-agent"]
            found.setdefault("claude" if "command" in entry else "cursor", []).append(entry)
    assert {name: len(entries) for name, entries in found.items()} == \
        {"cursor": 1, "vscode": 1, "claude": 1}
    return {name: entries[0] for name, entries in found.items()}


def expand(text, env):
    """``${NAME}`` replaced from ``env``, as mcp-remote does in its arguments."""
    return re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], text)


async def assert_connects(url, headers):
    async with mcp_session(url, headers) as session:
        assert "ask_agent" in await all_tools(session)


def test_the_doc_examples_are_all_run():
    """A new example in the doc needs a test below: the blocks are counted here."""
    languages = [lang for lang, _ in fenced_blocks(DOC)]
    assert sorted(set(languages)) == ["", "bash", "json", "python"]
    assert languages.count("python") == 1 and languages.count("bash") == 1
    assert languages.count("json") == 4, "three configurations and one result"
    for block in doc_blocks("json"):
        json.loads(block)


@pytest.mark.anyio
async def test_the_cursor_configuration_connects(server):
    entry = configurations(server, server.admin_key)["cursor"]
    assert set(entry) == {"url", "headers"}
    await assert_connects(entry["url"], entry["headers"])


@pytest.mark.anyio
async def test_the_vs_code_configuration_connects(server):
    entry = configurations(server, server.admin_key)["vscode"]
    assert entry["type"] == "http" and set(entry) == {"type", "url", "headers"}
    await assert_connects(entry["url"], entry["headers"])


@pytest.mark.anyio
async def test_the_claude_desktop_configuration_sends_the_key(server):
    """What mcp-remote makes of the arguments: the URL, and the header with ${AUTH} filled in."""
    entry = configurations(server, server.admin_key)["claude"]
    assert entry["command"] == "npx" and entry["args"][:2] == ["-y", "mcp-remote"]
    args = entry["args"][2:]
    url = args[0]
    headers = {}
    for flag, value in zip(args[1::2], args[2::2]):
        assert flag == "--header"
        name, _, header = expand(value, entry["env"]).partition(":")
        headers[name] = header.strip()
    assert headers == {"Authorization": "Bearer " + server.admin_key}
    await assert_connects(url, headers)


def mcp_remote_available():
    if shutil.which("npx") is None:
        return False
    try:
        probe = subprocess.run(["npx", "-y", "mcp-remote"], capture_output=True, text=True,
                               timeout=90)
    except subprocess.TimeoutExpired:
        return False
    return "Usage: mcp-remote" in probe.stdout + probe.stderr


@pytest.mark.anyio
async def test_the_claude_desktop_configuration_works_through_mcp_remote(server, tmp_path):
    """Runs the configuration as Claude Desktop does: the command over stdio."""
    if not mcp_remote_available():
        pytest.skip("npx or the mcp-remote package is not available here")
    entry = configurations(server, server.admin_key)["claude"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"],
                                   env=entry["env"])
    with open(tmp_path / "mcp-remote.log", "w") as log:
        with anyio.fail_after(120):
            async with stdio_client(params, errlog=log) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    assert "ask_agent" in await all_tools(session)
                    result = await ask(session, "through the bridge")
    assert text_of(result) == "Echo: through the bridge (1 messages)", \
        (tmp_path / "mcp-remote.log").read_text()


def test_the_curl_example(server):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    [script] = doc_blocks("bash")
    env = dict(os.environ, ETLWORKS_URL=server.url, ETLWORKS_API_KEY=server.admin_key)
    result = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert re.search(r'"protocolVersion"\s*:\s*"2025-11-25"', result.stdout), result.stdout


def test_the_python_example(server, tmp_path):
    [example] = doc_blocks("python")
    script = tmp_path / "mcp_example.py"
    script.write_text(with_server(example, server, server.admin_key), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), capture_output=True,
                            text=True, timeout=120, env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "tools: search_knowledge_base, " in out and "ask_agent" in out
    assert "Based on the knowledge base" in out
    assert "# Creating a REST API (HTTP) Connection" in out
    assert "  ... phase: thinking" in out and "  ... text: Echo" in out
    assert "Echo: How do I schedule a flow? (1 messages)" in out
    assert out.rstrip().endswith("Echo: Now make it hourly (3 messages)")


@pytest.mark.anyio
async def test_the_documented_result_has_the_real_fields(server):
    [documented] = [json.loads(b) for b in doc_blocks("json") if '"answer"' in b]
    async with connect(server, server.admin_key) as session:
        real = (await ask(session, "[tool] fields")).structuredContent
    assert set(documented) == set(real)
    assert set(documented["usage"]) == set(real["usage"])
