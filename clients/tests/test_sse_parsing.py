"""SSE parsing by the Python and bash clients, against the framing rules rather than one server:
blank lines, ':' comments, multi-line data, CRLF/CR line ends, events split anywhere, streams
without chunked encoding, streams cut short, and JSON errors where a stream was expected."""

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import SH_SCRIPT
from etlworks_agent import EtlworksAgent, EtlworksAgentError, SSEParser


def feed_all(pieces):
    parser = SSEParser()
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


STREAM = (
    b": keep-alive\n\n"
    b"data: {\"type\":\"session\",\"session_id\":\"s1\"}\n\n"
    b": another comment\n"
    b"data: {\"type\":\"token\",\n"
    b"data: \"content\":\"h\xc3\xa9llo \"}\n\n"
    b"event: custom\nid: 7\nretry: 100\ndata:{\"type\":\"token\",\"content\":\"w\"}\n\n"
    b"\n\n"
    b"data: {\"type\":\"end\"}\n\n"
)


def expected():
    return [("message", '{"type":"session","session_id":"s1"}'),
            ("message", '{"type":"token",\n"content":"h\u00e9llo "}'),
            ("custom", '{"type":"token","content":"w"}'),
            ("message", '{"type":"end"}')]


def test_whole_stream():
    assert feed_all([STREAM]) == expected()


def test_every_split_point():
    for cut in range(1, len(STREAM)):
        assert feed_all([STREAM[:cut], STREAM[cut:]]) == expected(), cut


def test_byte_by_byte():
    assert feed_all([STREAM[i:i + 1] for i in range(len(STREAM))]) == expected()


@pytest.mark.parametrize("newline", [b"\r\n", b"\r"])
def test_crlf_and_cr_line_ends(newline):
    stream = STREAM.replace(b"\n", newline)
    assert feed_all([stream]) == expected()
    assert feed_all([stream[i:i + 3] for i in range(0, len(stream), 3)]) == expected()


def test_bom_and_field_without_colon_and_no_space():
    events = feed_all([b"\xef\xbb\xbfdata:x\ndata\ndata:  two spaces\n\n"])
    assert events == [("message", "x\n\n two spaces")]


def test_last_event_without_blank_line_is_kept():
    assert feed_all([b"data: {\"type\":\"end\"}"]) == [("message", '{"type":"end"}')]
    assert feed_all([b"data: a\r"]) == [("message", "a")]


def test_comment_only_stream():
    assert feed_all([b": a\n\n: b\n\n"]) == []


# ------------------------------------------------------------- the clients on odd framing


class OddServer:
    """Answers every POST with a fixed body, HTTP/1.0 (no chunked encoding), closing after it."""

    def __init__(self):
        self.body = b""
        self.status = 200
        self.content_type = "text/event-stream"
        odd = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(odd.status)
                self.send_header("Content-Type", odd.content_type)
                self.end_headers()
                self.wfile.write(odd.body)

            do_GET = do_POST

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def odd():
    server = OddServer()
    yield server
    server.close()


def run_bash(odd_server, *args):
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    env = dict(os.environ, ETLWORKS_URL=odd_server.url, ETLWORKS_API_KEY="k")
    return subprocess.run(["bash", str(SH_SCRIPT)] + list(args), env=env, capture_output=True,
                          text=True, timeout=30)


ODD_STREAM = (
    b": hello\r\n\r\n"
    b"data: {\"type\":\"session\",\"session_id\":\"s1\"}\r\n\r\n"
    b"data: {\"type\":\"token\",\r\ndata: \"content\":\"multi \"}\r\n\r\n"
    b"data: {\"type\":\"tool_start\",\"tool\":\"t\",\"message\":\"Working...\"}\r\n\r\n"
    b"data: {\"type\":\"token\",\"content\":\"line\"}\r\n\r\n"
    b"data: {\"type\":\"end\"}\r\n\r\n"
)


def test_python_without_chunked_encoding(odd):
    odd.body = ODD_STREAM
    events = list(EtlworksAgent(odd.url, api_key="k").chat_stream("hi"))
    assert [e["type"] for e in events] == ["session", "token", "tool_start", "token", "end"]
    assert events[1]["content"] == "multi "


def test_bash_with_crlf_comments_and_multi_line_data(odd):
    odd.body = ODD_STREAM
    result = run_bash(odd, "chat-stream", "hi")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "multi \nline\n"
    assert result.stderr == "[Working...]\n"


def test_a_stream_cut_short_is_an_error(odd):
    odd.body = b"data: {\"type\":\"session\",\"session_id\":\"s1\"}\n\ndata: {\"type\":\"token\",\"content\":\"par\"}\n\n"
    with pytest.raises(EtlworksAgentError) as e:
        list(EtlworksAgent(odd.url, api_key="k").chat_stream("hi"))
    assert e.value.code == "stream_interrupted" and e.value.retryable is True
    result = run_bash(odd, "chat-stream", "hi")
    assert result.returncode == 1
    assert result.stdout == "par\n"
    assert "ended before its end event" in result.stderr


def test_an_error_event_with_a_code(odd):
    odd.body = (b"data: {\"type\":\"session\",\"session_id\":\"s1\"}\n\n"
                b"data: {\"type\":\"error\",\"message\":\"AI usage cap exceeded\",\"retryable\":false,"
                b"\"code\":\"cap_exceeded\"}\n\n")
    with pytest.raises(EtlworksAgentError) as e:
        list(EtlworksAgent(odd.url, api_key="k").chat_stream("hi"))
    assert (e.value.code, e.value.message, e.value.retryable) == (
        "cap_exceeded", "AI usage cap exceeded", False)
    result = run_bash(odd, "chat-stream", "hi")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("error: cap_exceeded: AI usage cap exceeded")


def test_a_json_refusal_where_a_stream_was_expected(odd):
    odd.content_type = "application/json"
    odd.body = json.dumps({"success": False, "error": "AI usage cap exceeded",
                           "code": "cap_exceeded"}).encode()
    with pytest.raises(EtlworksAgentError) as e:
        EtlworksAgent(odd.url, api_key="k").chat_stream("hi")
    assert e.value.code == "cap_exceeded"
    result = run_bash(odd, "chat-stream", "hi")
    assert result.returncode == 1 and "cap_exceeded: AI usage cap exceeded" in result.stderr


def test_a_proxy_error_page(odd):
    odd.status = 502
    odd.content_type = "text/html"
    odd.body = b"<html>Bad Gateway</html>\n"
    with pytest.raises(EtlworksAgentError) as e:
        EtlworksAgent(odd.url, api_key="k").chat("hi")
    assert e.value.status == 502 and "Bad Gateway" in e.value.message
    result = run_bash(odd, "chat", "hi")
    assert result.returncode == 1 and "HTTP 502" in result.stderr
    result = run_bash(odd, "chat-stream", "hi")
    assert result.returncode == 1 and "502" in result.stderr
