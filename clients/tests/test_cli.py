"""The command lines: etlworks_agent.py and etlworks-agent.sh, run as a user would (subprocess,
ETLWORKS_URL / ETLWORKS_API_KEY in the environment). Every test runs for both clients."""

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import MODEL, PS_SCRIPT, PY_SCRIPT, SH_SCRIPT, SLOW_TOKENS, free_port, run_cli

CLIENTS = ["python", "bash", "powershell"]

# The PowerShell client's switches for the other clients' options.
PS_OPTIONS = {"--json": "-Json", "--no-tools": "-NoTools", "--system-prompt": "-SystemPrompt",
              "--limit": "-Limit", "--offset": "-Offset", "--after": "-After",
              "--on-disconnect": "-OnDisconnect"}


def command_for(kind):
    if kind == "python":
        return [sys.executable, str(PY_SCRIPT)]
    if kind == "powershell":
        pwsh = shutil.which("pwsh") or shutil.which("powershell")
        if pwsh is None:
            pytest.skip("PowerShell (pwsh) is not installed here: etlworks-agent.ps1 is checked "
                        "statically in test_powershell.py")
        return [pwsh, "-NoProfile", "-NonInteractive", "-File", str(PS_SCRIPT)]
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip("the bash client needs %s, which is not installed" % tool)
    return ["bash", str(SH_SCRIPT)]


@pytest.fixture(params=CLIENTS)
def cli(request, cli_env):
    base = command_for(request.param)

    def run(*args, env=None, timeout=60):
        args = [str(a) for a in args]
        if request.param == "powershell":
            args = [PS_OPTIONS.get(a, a) for a in args]
        return run_cli(base + args, env or cli_env, timeout=timeout)

    run.kind = request.param
    run.base = base
    return run


def ok(result):
    assert result.returncode == 0, "exit %d\nstdout: %s\nstderr: %s" % (
        result.returncode, result.stdout, result.stderr)
    return result.stdout


def failed(result, *expected):
    """A failure: non-zero exit, one line on stderr with the expected words, no traceback."""
    assert result.returncode != 0, result.stdout
    err = result.stderr.strip()
    assert err, "no message on stderr"
    assert len(err.splitlines()) == 1, "more than one line on stderr: %r" % err
    assert "Traceback" not in err
    for word in expected:
        assert word in err, "%r not in %r" % (word, err)
    return err


def test_tools(cli):
    out = ok(cli("tools"))
    lines = out.strip().splitlines()
    assert lines[0].startswith("search_knowledge_base")
    assert " free " in lines[0]
    assert lines[-1].endswith(" tools")
    raw = json.loads(ok(cli("--json", "tools")))
    assert raw["count"] == len(raw["tools"]) == len(lines) - 1


def test_tool(cli):
    out = ok(cli("tool", "search_knowledge_base", '{"query": "REST connection"}'))
    assert out.startswith("Based on the knowledge base")
    raw = json.loads(ok(cli("tool", "search_knowledge_base", '{"query": "flows"}', "--json")))
    assert raw["success"] is True and raw["tool"] == "search_knowledge_base"


def test_tool_errors(cli):
    failed(cli("tool", "no_such_tool", "{}"), "tool_not_found", "Tool not found: no_such_tool")
    failed(cli("tool", "search_knowledge_base", "{}"), "400", "query")
    result = cli("tool", "search_knowledge_base", "{not json")
    assert result.returncode != 0 and "Traceback" not in result.stderr


def test_chat(cli):
    out = ok(cli("chat", "How do I create a connection?"))
    assert out == "Echo: How do I create a connection? (1 messages)\n"
    raw = json.loads(ok(cli("--json", "chat", "[tool] with json")))
    assert raw["tools_used"] == ["search_knowledge_base"]
    assert raw["usage"]["model"] == MODEL


def test_chat_options(cli, upstream):
    marker = "options via %s" % cli.kind
    ok(cli("chat", "--no-tools", "--system-prompt", "Be brief.", marker))
    sent = upstream.requests_with(marker)[-1]["body"]
    assert not sent.get("tools")
    assert "Be brief." in sent["messages"][0]["content"]


def test_chat_stream(cli):
    result = cli("chat-stream", "[tool] How do I schedule a flow?")
    out = ok(result)
    assert out == "Found it: the knowledge base answered.\n"
    assert "[Searching the knowledge base...]" in result.stderr
    events = [json.loads(line) for line in ok(cli("--json", "chat-stream", "hello")).splitlines()]
    assert events[0]["type"] == "session" and events[-1]["type"] == "end"
    assert "".join(e.get("content", "") for e in events if e["type"] == "token") \
        == "Echo: hello (1 messages)"


def test_chat_stream_prints_tokens_as_they_arrive(cli, cli_env):
    process = subprocess.Popen(cli.base + ["chat-stream", "[slow] watch me"], env=cli_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = time.monotonic()
    first = {}

    def read_first():
        data = process.stdout.read1(100) if hasattr(process.stdout, "read1") else \
            process.stdout.read(1)
        first["at"] = time.monotonic() - start
        first["data"] = data

    reader = threading.Thread(target=read_first)
    reader.start()
    reader.join(30)
    rest, err = process.communicate(timeout=60)
    total = time.monotonic() - start
    assert process.returncode == 0, err
    assert first["data"].startswith(b"tick0"), first
    # All tokens take about SLOW_TOKENS * 0.25 s; the first must be shown long before the end.
    assert total - first["at"] > 1.5, "output came at once: first at %.2fs of %.2fs" % (
        first["at"], total)
    assert (first["data"] + rest).decode().strip() == " ".join(
        "tick%d" % i for i in range(SLOW_TOKENS))


def test_chat_failure_is_reported(cli):
    failed(cli("chat", "[fail] please"))
    failed(cli("chat-stream", "[fail] please"), "retryable")


def test_sessions(cli):
    session = ok(cli("session-create"))
    assert session.endswith("\n") and session.count("\n") == 1
    session = session.strip()
    uuid.UUID(session)
    assert ok(cli("session-chat", session, "Create a connection to api.example.com")).strip() \
        == "Echo: Create a connection to api.example.com (1 messages)"
    assert ok(cli("session-chat", session, "Now schedule it to run every hour")).strip() \
        .endswith("(3 messages)")
    result = cli("session-chat-stream", session, "[tool] find it")
    assert ok(result) == "Found it: the knowledge base answered.\n"
    out = ok(cli("session-messages", session))
    assert out.startswith("[user]\nCreate a connection to api.example.com\n\n[assistant]\nEcho:")
    assert out.count("[user]") == 3 and out.count("[assistant]") == 3
    messages = json.loads(ok(cli("--json", "session-messages", session)))
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    listed = ok(cli("sessions", "--limit", "1"))
    assert listed.startswith(session) and "6 msgs" in listed
    page = json.loads(ok(cli("sessions", "--json", "--limit", "2", "--offset", "1")))
    assert page["limit"] == 2 and page["offset"] == 1
    assert json.loads(ok(cli("session-stop", session)))["stopped"] is False
    assert json.loads(ok(cli("session-delete", session)))["deleted"] is True
    failed(cli("session-messages", session), "404", "not_found")


def test_unknown_session(cli):
    missing = str(uuid.uuid4())
    for args in (("session-chat", missing, "hi"), ("session-chat-stream", missing, "hi"),
                 ("session-messages", missing), ("session-chat", "not-a-uuid", "hi")):
        failed(cli(*args), "404", "does not exist")


def test_bad_key(cli, cli_env):
    env = dict(cli_env, ETLWORKS_API_KEY="x" * 256)
    for args in (("tools",), ("chat", "hi"), ("chat-stream", "hi"), ("session-create",)):
        failed(cli(*args, env=env), "401")


def test_missing_configuration(cli, cli_env):
    env = {k: v for k, v in cli_env.items() if k != "ETLWORKS_API_KEY"}
    failed(cli("tools", env=env), "ETLWORKS_API_KEY")
    env = {k: v for k, v in cli_env.items() if k != "ETLWORKS_URL"}
    failed(cli("tools", env=env), "ETLWORKS_URL")


def test_unreachable_server(cli, cli_env):
    env = dict(cli_env, ETLWORKS_URL="http://127.0.0.1:%d" % free_port())
    failed(cli("tools", env=env), "127.0.0.1")
    failed(cli("chat-stream", "hi", env=env), "127.0.0.1")


def test_usage_errors(cli):
    for args in ((), ("chat",), ("no-such-command",), ("session-chat", "only-id"),
                 ("api-key", "set")):
        result = cli(*args)
        assert result.returncode != 0
        assert "Traceback" not in result.stderr


def test_cap_exceeded(cli, cli_env, capped_key, needs_billing):
    env = dict(cli_env, ETLWORKS_API_KEY=capped_key)
    failed(cli("chat", "[capped] hi", env=env), "cap_exceeded", "AI usage cap exceeded")
    failed(cli("chat-stream", "[capped] hi", env=env), "cap_exceeded", "AI usage cap exceeded")
    session = ok(cli("session-create", env=env)).strip()
    failed(cli("session-chat", session, "[capped] hi", env=env), "cap_exceeded")
    assert ok(cli("tool", "search_knowledge_base", '{"query": "flows"}', env=env))


def test_usage(cli, needs_billing):
    usage = json.loads(ok(cli("usage")))
    assert "allowance_left_usd" in usage and "wallet_usd" in usage


def test_api_key(cli, cli_env, tenant_admin_key, needs_api_key_endpoints):
    env = dict(cli_env, ETLWORKS_API_KEY=tenant_admin_key)
    secret = "sk-cli-%s-key-wxyz" % cli.kind
    ok(cli("api-key", "set", secret, env=env))
    shown = json.loads(ok(cli("api-key", "get", env=env)))
    assert shown["configured"] is True and secret not in json.dumps(shown)
    assert shown["masked"].endswith("wxyz")
    ok(cli("api-key", "delete", env=env))
    assert json.loads(ok(cli("api-key", "get", env=env)))["configured"] is False


def test_api_key_forbidden_for_a_user(cli, cli_env, server, needs_api_key_endpoints):
    key = server.new_key("cliusers-%s" % cli.kind, "u@%s.example.com" % cli.kind, role="user")
    failed(cli("api-key", "set", "sk-nope-0000", env=dict(cli_env, ETLWORKS_API_KEY=key)),
           "permission_denied")
