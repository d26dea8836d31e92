"""Resumable streams in the three clients: event ids, ``on_disconnect``, rejoining a session's
turn (``GET /sessions/{id}/stream``) and the Python client's automatic rejoin.

A ``[slow]`` answer (twelve tokens, 0.25 s apart) is started with ``on_disconnect: continue``;
the test reads a few events, drops the connection, rejoins with a client and checks that the
tokens of both parts concatenate to the stored assistant message, nothing repeated or lost.
Broken connections are made by ``CuttingProxy``, a TCP proxy in front of the server that cuts
a connection after a given number of bytes from the server.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import PY_SCRIPT, SH_SCRIPT, SLOW_TOKENS, run_cli
from etlworks_agent import EtlworksAgent, EtlworksAgentError, SSEParser, StreamEvent
from test_cli import PS_OPTIONS, cli, failed, ok  # noqa: F401  (cli: python, bash, powershell)

ANSWER = "".join("tick%d " % i for i in range(SLOW_TOKENS))
ID = re.compile(r"^[0-9a-f]{32}:[0-9]+$")


def tokens(events):
    return "".join(e["content"] for e in events if e["type"] == "token")


def seq(event_id):
    return int(event_id.rsplit(":", 1)[1])


def seqs(events):
    return [e.seq for e in events]


def assistant_message(agent, session, timeout=30):
    """The session's last assistant message once its turn has stored it."""
    deadline = time.monotonic() + timeout
    while True:
        messages = agent.get_messages(session)
        if messages and messages[-1]["role"] == "assistant":
            return messages[-1]
        if time.monotonic() > deadline:
            raise AssertionError("no assistant message in %s: %r" % (session, messages))
        time.sleep(0.1)


def read_then_leave(agent, session, count, message="[slow] a long answer",
                    on_disconnect="continue"):
    """Streams ``message`` in ``session``, reads up to the ``count``-th token, then closes the
    connection. Returns the events read."""
    events = []
    stream = agent.session_chat_stream(session, message, on_disconnect=on_disconnect)
    for event in stream:
        events.append(event)
        if len([e for e in events if e["type"] == "token"]) >= count:
            break
    stream.close()
    return events


# ------------------------------------------------------------------------------ a cutting proxy


class CuttingProxy:
    """A TCP proxy to the server. Connection ``k`` (from 0) is cut after ``cuts[k]`` bytes from
    the server (``None``: never; ``0``: closed at once, before a byte); connections past the
    list are never cut, unless ``refuse_after`` closes them at once."""

    def __init__(self, server_url, cuts, refuse_after=False):
        host, port = re.match(r"https?://([^:/]+):(\d+)", server_url).groups()
        self.target = (host, int(port))
        self.cuts = list(cuts)
        self.refuse_after = refuse_after
        self.connections = 0
        self.cut = 0
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.url = "http://127.0.0.1:%d" % self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self._closed = True
        self._listener.close()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            if index < len(self.cuts):
                limit = self.cuts[index]
            else:
                limit = 0 if self.refuse_after else None
            threading.Thread(target=self._serve, args=(client, limit), daemon=True).start()

    def _serve(self, client, limit):
        if limit == 0:
            client.close()
            return
        upstream = socket.create_connection(self.target)

        def pump_up():
            try:
                while True:
                    data = client.recv(65536)
                    if not data:
                        break
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=pump_up, daemon=True).start()
        sent = 0
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    client.sendall(data[:limit - sent])
                    self.cut += 1
                    break
                client.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


@pytest.fixture
def proxy_factory(server):
    made = []

    def make(cuts, refuse_after=False):
        proxy = CuttingProxy(server.url, cuts, refuse_after=refuse_after)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


# ------------------------------------------------------------------------------------ event ids


def test_stream_events_carry_their_ids_and_stay_plain_dicts(agent):
    events = list(agent.chat_stream("ids please"))
    assert all(isinstance(e, StreamEvent) and isinstance(e, dict) for e in events)
    assert all(ID.match(e.id) for e in events), [e.id for e in events]
    assert len({e.turn_id for e in events}) == 1
    assert seqs(events) == list(range(1, len(events) + 1))
    # What the streams yielded before still works: dict access, equality, JSON.
    session = events[0]["session_id"]
    assert events[0] == {"type": "session", "session_id": session}
    assert json.loads(json.dumps(events[-1])) == {"type": "end"}
    assert tokens(events) == "Echo: ids please (1 messages)"


def test_the_parser_reads_ids_after_the_data_line():
    parser = SSEParser()
    events = parser.feed(b"data: {\"type\":\"session\"}\nid: t:1\n\n"
                         b"data: {\"type\":\"token\"}\n\n"
                         b"id: t:3\ndata: {\"type\":\"end\"}\n\n"
                         b"data: x\nid: bad\x00id\n\n")
    assert events == [("message", '{"type":"session"}'), ("message", '{"type":"token"}'),
                      ("message", '{"type":"end"}'), ("message", "x")]
    assert [e.id for e in events] == ["t:1", None, "t:3", None]
    assert parser.last_event_id == "t:3", "an id with NUL is ignored; the last one stays"
    name, data = events[0]
    assert (name, data) == ("message", '{"type":"session"}')


def test_on_disconnect_is_checked_by_the_server(agent):
    session = agent.create_session()
    for call in (lambda: agent.session_chat(session, "hi", on_disconnect="later"),
                 lambda: agent.session_chat_stream(session, "hi", on_disconnect="later"),
                 lambda: agent.chat_stream("hi", on_disconnect="sometimes")):
        with pytest.raises(EtlworksAgentError) as e:
            call()
        assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_field",
                                                                 "on_disconnect")
    result = agent.session_chat(session, "hi", on_disconnect="continue")
    assert result["response"] == "Echo: hi (1 messages)"
    assert agent.chat("hi", on_disconnect="cancel")["response"] == "Echo: hi (1 messages)"


# ------------------------------------------------------------------------ rejoining in Python


def test_resume_replays_what_was_missed_then_follows_live(agent):
    session = agent.create_session()
    first = read_then_leave(agent, session, 3)
    assert first[0]["type"] == "session" and seqs(first) == list(range(1, len(first) + 1))
    rest = list(agent.resume(session, first[-1].id))
    assert seqs(rest) == list(range(first[-1].seq + 1, first[-1].seq + 1 + len(rest))), \
        "nothing twice, nothing lost"
    assert rest[-1]["type"] == "end" and "session" not in [e["type"] for e in rest]
    assert {e.turn_id for e in first + rest} == {first[0].turn_id}
    message = assistant_message(agent, session)
    assert tokens(first) + tokens(rest) == message["content"] == ANSWER
    assert "interrupted" not in message


def test_resume_without_an_id_replays_the_whole_turn_and_a_bare_number_works(agent):
    session = agent.create_session()
    first = read_then_leave(agent, session, 1)
    assistant_message(agent, session)
    whole = list(agent.resume(session))
    assert whole[0] == {"type": "session", "session_id": session}
    assert seqs(whole) == list(range(1, len(whole) + 1)) and tokens(whole) == ANSWER
    assert whole[:len(first)] == first and [e.id for e in whole[:len(first)]] == \
        [e.id for e in first]
    after_three = list(agent.resume(session, 3))
    assert after_three == whole[3:]
    assert list(agent.resume(session, whole[-1].id)) == [], "nothing after the end"


def test_leaving_a_rejoined_stream_does_not_stop_the_turn(agent, server):
    """A second client follows a turn and leaves; the turn's own client still gets it all."""
    session = agent.create_session()
    owner = EtlworksAgent(server.url, api_key=server.admin_key, timeout=60)
    events = []
    started = threading.Event()

    def consume():
        for event in owner.session_chat_stream(session, "[slow] watched"):  # default: cancel
            events.append(event)
            if event["type"] == "token":
                started.set()

    reader = threading.Thread(target=consume)
    reader.start()
    assert started.wait(15)
    watcher = agent.resume(session)
    watched = [next(watcher) for _ in range(5)]
    watcher.close()
    assert watched[0]["type"] == "session" and seqs(watched) == [1, 2, 3, 4, 5]
    reader.join(30)
    assert events[-1]["type"] == "end" and tokens(events) == ANSWER
    assert "interrupted" not in assistant_message(agent, session)


def test_without_continue_leaving_stops_the_turn(agent):
    session = agent.create_session()
    first = read_then_leave(agent, session, 2, on_disconnect=None)
    message = assistant_message(agent, session)
    assert message.get("interrupted") is True
    assert message["content"].startswith(tokens(first)) and message["content"] != ANSWER


def test_resume_errors_are_the_servers(agent, server):
    session = agent.create_session()
    with pytest.raises(EtlworksAgentError) as e:
        agent.resume(session)
    assert (e.value.status, e.value.code) == (404, "no_turn")
    assert "GET /sessions/%s/messages" % session in e.value.message
    agent.session_chat(session, "something to rejoin")
    for bad in ("nonsense", "-1", "abc:3"):
        with pytest.raises(EtlworksAgentError) as e:
            agent.resume(session, bad)
        assert (e.value.status, e.value.code, e.value.field) == (400, "invalid_field", "after")
        assert "event id" in e.value.message
        assert str(e.value).startswith("HTTP 400 invalid_field: ")
    with pytest.raises(EtlworksAgentError) as e:
        agent.resume(str(uuid.uuid4()))
    assert (e.value.status, e.value.code) == (404, "not_found")
    other = EtlworksAgent(server.url, api_key=server.new_key("resumers", "r@resume.example.com"))
    with pytest.raises(EtlworksAgentError) as e:
        other.resume(session)
    assert (e.value.status, e.value.code) == (404, "not_found")


# ----------------------------------------------------------------- automatic rejoin in Python


@pytest.mark.parametrize("how", ["session_chat_stream", "chat_stream"])
def test_a_broken_stream_is_rejoined_and_seen_once(agent, server, proxy_factory, how):
    # The first connection is cut inside the answer, the first rejoin too; the second goes on.
    proxy = proxy_factory([900, 450])
    proxied = EtlworksAgent(proxy.url, api_key=server.admin_key, timeout=60)
    if how == "chat_stream":
        events = list(proxied.chat_stream("[slow] auto", on_disconnect="continue"))
        session = events[0]["session_id"]
    else:
        session = agent.create_session()
        events = list(proxied.session_chat_stream(session, "[slow] auto",
                                                  on_disconnect="continue"))
    assert proxy.cut == 2 and proxy.connections == 3, "two breaks, two rejoins"
    assert seqs(events) == list(range(1, len(events) + 1)), "each event once, none missing"
    assert events[0]["type"] == "session" and events[-1]["type"] == "end"
    assert [e["type"] for e in events].count("session") == 1
    message = assistant_message(agent, session)
    assert tokens(events) == message["content"] == ANSWER
    assert "interrupted" not in message


def test_resume_itself_rejoins_when_it_breaks(agent, server, proxy_factory):
    session = agent.create_session()
    first = read_then_leave(agent, session, 1)
    proxy = proxy_factory([400])
    proxied = EtlworksAgent(proxy.url, api_key=server.admin_key, timeout=60)
    rest = list(proxied.resume(session, first[-1].id))
    assert proxy.cut == 1 and proxy.connections == 2
    assert seqs(first + rest) == list(range(1, len(first) + len(rest) + 1))
    assert tokens(first) + tokens(rest) == assistant_message(agent, session)["content"] == ANSWER


def test_rejoins_are_bounded_and_the_break_says_where_it_was(agent, server, proxy_factory):
    session = agent.create_session()
    proxy = proxy_factory([900], refuse_after=True)
    proxied = EtlworksAgent(proxy.url, api_key=server.admin_key, timeout=60, max_resumes=2)
    seen = []
    with pytest.raises(EtlworksAgentError) as e:
        for event in proxied.session_chat_stream(session, "[slow] bounded",
                                                 on_disconnect="continue"):
            seen.append(event)
    assert proxy.connections == 3, "the stream and two rejoins"
    error = e.value
    assert error.code == "stream_interrupted" and error.retryable is True
    assert "rejoining it failed" in error.message
    assert error.session_id == session and error.last_event_id == seen[-1].id
    # What the error says is enough to rejoin from elsewhere, without losing an event.
    rest = list(agent.resume(error.session_id, error.last_event_id))
    assert seqs(seen + rest) == list(range(1, len(seen) + len(rest) + 1))
    assert tokens(seen) + tokens(rest) == assistant_message(agent, session)["content"] == ANSWER


def test_without_continue_a_break_is_raised_not_rejoined(agent, server, proxy_factory):
    session = agent.create_session()
    proxy = proxy_factory([900])
    proxied = EtlworksAgent(proxy.url, api_key=server.admin_key, timeout=60)
    seen = []
    with pytest.raises(EtlworksAgentError) as e:
        for event in proxied.session_chat_stream(session, "[slow] not kept"):
            seen.append(event)
    assert proxy.connections == 1
    assert e.value.code == "stream_interrupted"
    assert (e.value.session_id, e.value.last_event_id) == (session, seen[-1].id)
    assert assistant_message(agent, session).get("interrupted") is True


def test_max_resumes_zero_turns_the_rejoin_off(agent, server, proxy_factory):
    session = agent.create_session()
    proxy = proxy_factory([900])
    proxied = EtlworksAgent(proxy.url, api_key=server.admin_key, timeout=60, max_resumes=0)
    with pytest.raises(EtlworksAgentError) as e:
        list(proxied.session_chat_stream(session, "[slow] once", on_disconnect="continue"))
    assert e.value.code == "stream_interrupted" and proxy.connections == 1
    assert assistant_message(agent, session)["content"] == ANSWER, "the turn went on"


# ---------------------------------------------------------------------- the command lines


def test_cli_resume_prints_the_rest(cli, agent):
    session = agent.create_session()
    first = read_then_leave(agent, session, 3)
    out = ok(cli("resume", session, "--after", first[-1].id, timeout=60))
    assert out.endswith("\n") and not out.endswith("\n\n")
    message = assistant_message(agent, session)
    assert tokens(first) + out[:-1] == message["content"] == ANSWER
    # The whole turn without --after; one JSON event per line with --json.
    assert ok(cli("resume", session)) == ANSWER + "\n"
    events = [json.loads(line) for line in ok(cli("resume", session, "--json", "--after",
                                                  "5")).splitlines()]
    assert events[-1] == {"type": "end"} and "session" not in [e["type"] for e in events]
    assert tokens(events) == ANSWER[len("tick0 tick1 "):], "events 1-5: session, 2 phases, 2 tokens"
    # After the turn's last event there is nothing more: no output, no error.
    end_id = list(agent.resume(session))[-1].id
    result = cli("resume", session, "--after", end_id)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_cli_resume_errors(cli, agent):
    session = agent.create_session()
    failed(cli("resume", session), "404", "no_turn")
    agent.session_chat(session, "done already")
    failed(cli("resume", session, "--after", "nonsense"), "400", "invalid_field", "'after'")
    failed(cli("resume", str(uuid.uuid4())), "404", "not_found")
    for args in (("resume",), ("resume", session, "extra"), ("chat", "hi", "--after", "1"),
                 ("chat", "hi", "--on-disconnect", "later")):
        result = cli(*args)
        assert result.returncode == 2, (args, result.returncode, result.stderr)
        assert "Traceback" not in result.stderr


def _start_in_own_group(cli, env, *args):
    kwargs = {"start_new_session": True} if os.name != "nt" else {}
    args = list(args)
    if cli.kind == "powershell":
        args = [PS_OPTIONS.get(a, a) for a in args]
    return subprocess.Popen(cli.base + args, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def _read_until(process, text, timeout=30):
    """Reads the process's stdout until ``text`` appears (a thread, so that a hang fails)."""
    got = bytearray()
    done = threading.Event()

    def read():
        while text.encode() not in got:
            data = process.stdout.read1(64) if hasattr(process.stdout, "read1") else \
                process.stdout.read(1)
            if not data:
                break
            got.extend(data)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout)
    return bytes(got).decode()


@pytest.mark.parametrize("on_disconnect", ["continue", None])
def test_cli_on_disconnect(cli, cli_env, agent, on_disconnect):
    session = agent.create_session()
    args = ["session-chat-stream", session, "[slow] leave me"]
    if on_disconnect:
        args[1:1] = ["--on-disconnect", on_disconnect]
    process = _start_in_own_group(cli, cli_env, *args)
    try:
        seen = _read_until(process, "tick1 ")
        assert "tick1 " in seen, seen
    finally:
        if os.name != "nt":
            os.killpg(process.pid, signal.SIGKILL)  # the script and its curl alike
        else:
            process.kill()
        process.communicate(timeout=30)
    message = assistant_message(agent, session)
    if on_disconnect == "continue":
        assert message["content"] == ANSWER and "interrupted" not in message
        assert ok(cli("resume", session)) == ANSWER + "\n"
    else:
        assert message.get("interrupted") is True and message["content"] != ANSWER


def test_cli_a_broken_stream(cli, cli_env, agent, proxy_factory):
    """Python rejoins by itself; bash and PowerShell fail with the command that rejoins."""
    session = agent.create_session()
    proxy = proxy_factory([900])
    env = dict(cli_env, ETLWORKS_URL=proxy.url)
    result = cli("session-chat-stream", "--on-disconnect", "continue", session, "[slow] cut",
                 env=env)
    message = assistant_message(agent, session)
    assert message["content"] == ANSWER
    if cli.kind == "python":
        assert ok(result) == ANSWER + "\n"
        assert proxy.connections == 2
        return
    err = failed(result, "(retryable)", "rejoin it with:")
    after = "-After" if cli.kind == "powershell" else "--after"
    hint = re.search(r"rejoin it with: \S+ resume (\S+) %s (\S+)$" % after, err)
    assert hint, err
    assert hint.group(1) == session and ID.match(hint.group(2))
    first = result.stdout.rstrip("\n")
    rest = ok(cli("resume", session, "--after", hint.group(2)))
    assert first + rest[:-1] == ANSWER, "nothing twice, nothing lost"


def test_the_python_command_line_names_the_rejoin(agent, cli_env, server, proxy_factory):
    """Without continue nothing is rejoined; the error line says where the stream broke."""
    session = agent.create_session()
    proxy = proxy_factory([900])
    env = dict(cli_env, ETLWORKS_URL=proxy.url)
    result = run_cli([sys.executable, str(PY_SCRIPT), "session-chat-stream", session,
                      "[slow] cut"], env)
    err = failed(result, "stream_interrupted", "rejoin it with: etlworks_agent.py resume " +
                 session + " --after ")
    assert re.search(r"--after [0-9a-f]{32}:[0-9]+$", err), err


# -------------------------------------------------- a stream cut short without chunked framing


class FakeTurnServer:
    """HTTP/1.0 without chunked encoding, so a cut looks like the end of the body: the POST
    answers events 1-2 and then ``tail`` (a third event cut somewhere); ``GET .../stream``
    answers the events after ``?after=``. Records the ``after`` of each rejoin."""

    EVENTS = [('{"type":"session","session_id":"s1"}', "t1:1"),
              ('{"type":"token","content":"a"}', "t1:2"),
              ('{"type":"token","content":"b"}', "t1:3"),
              ('{"type":"end"}', "t1:4")]

    def __init__(self, tail):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        fake = self
        self.rejoins = []

        def block(data, event_id):
            return "data: %s\nid: %s\n\n" % (data, event_id)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _events(self, text):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.write(text.encode())

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._events("".join(block(*e) for e in fake.EVENTS[:2]) + tail)

            def do_GET(self):
                after = parse_qs(urlsplit(self.path).query).get("after", [None])[0]
                fake.rejoins.append(after)
                seq = int(after.rsplit(":", 1)[1]) if after else 0
                self._events("".join(block(*e) for e in fake.EVENTS[seq:]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


CUTS = {
    # tail after events 1-2: (how the third event was cut, the id to rejoin after)
    "mid-data": ('data: {"type":"token","con', "t1:2"),
    "before-its-id": ('data: {"type":"token","content":"b"}\n', "t1:2"),
    "mid-id": ('data: {"type":"token","content":"b"}\nid: t1', "t1:2"),
    "before-the-blank-line": ('data: {"type":"token","content":"b"}\nid: t1:3\n', "t1:3"),
}


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_an_event_cut_short_is_left_to_the_rejoin(cut):
    tail, after = CUTS[cut]
    fake = FakeTurnServer(tail)
    try:
        agent = EtlworksAgent(fake.url, api_key="k", timeout=10)
        events = list(agent.session_chat_stream("s1", "hi", on_disconnect="continue"))
        assert fake.rejoins == [after]
        assert [e.id for e in events] == ["t1:1", "t1:2", "t1:3", "t1:4"]
        assert tokens(events) == "ab"
        for tool in ("bash", "curl", "jq"):
            if shutil.which(tool) is None:
                return
        env = dict(os.environ, ETLWORKS_URL=fake.url, ETLWORKS_API_KEY="k")
        result = run_cli(["bash", str(SH_SCRIPT), "session-chat-stream", "s1", "hi",
                          "--on-disconnect", "continue"], env)
        assert result.returncode == 1
        assert result.stdout == ("ab\n" if after == "t1:3" else "a\n")
        assert result.stderr.strip().endswith(
            "(retryable); rejoin it with: etlworks-agent.sh resume s1 --after " + after)
        rest = run_cli(["bash", str(SH_SCRIPT), "resume", "s1", "--after", after], env)
        assert rest.returncode == 0, rest.stderr
        assert result.stdout.rstrip("\n") + rest.stdout.rstrip("\n") == "ab"
    finally:
        fake.close()


# ------------------------------------------------------------------------- the docs, as written


def _doc_blocks(name):
    from conftest import REPO

    text = (REPO / "docs" / name).read_text(encoding="utf-8")
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def test_the_curl_rejoin_in_the_docs_works_as_written(server, agent, tmp_path):
    for tool in ("bash", "curl", "jq", "awk"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    blocks = _doc_blocks("streaming-sse.md")
    run = next(b for b in blocks if "LAST_ID=$(awk" in b)
    query = next(b for b in blocks if "stream?after=$LAST_ID" in b)
    # Only the question differs: the scripted model answers "[slow]" with a long answer.
    script = run.replace('"message": "Write a long', '"message": "[slow] Write a long')
    assert script != run
    script += "\necho '=== by query'\n" + query + "\necho \"=== $SESSION\"\n"
    env = dict(os.environ, ETLWORKS_URL=server.url, ETLWORKS_API_KEY=server.admin_key)
    result = subprocess.run(["bash", "-c", script], cwd=str(tmp_path), env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rejoined, by_query, session = re.fullmatch(r"(.*)=== by query\n(.*)=== (\S+)\n",
                                               result.stdout, re.S).groups()

    def parse(text):
        return [(json.loads(event[1]), event.id) for event in SSEParser().feed(text)]

    first = parse((tmp_path / "part1.txt").read_text())
    rest = parse(rejoined)
    assert first and rest and by_query == rejoined
    assert "end" not in [e["type"] for e, _ in first], "curl hung up mid-answer"
    ids = [seq(i) for _, i in first + rest]
    assert ids == list(range(1, len(ids) + 1)), "nothing twice, nothing lost"
    text = "".join(e.get("content", "") for e, _ in first + rest if e["type"] == "token")
    assert rest[-1][0]["type"] == "end"
    assert text == assistant_message(agent, session)["content"] == ANSWER
