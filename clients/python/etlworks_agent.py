#!/usr/bin/env python3
"""Client for the Integrator Agent (Etlworks AI Agent) API: a library and a command line.

Needs Python 3.8+ and ``requests``. The server URL and the API key come from the arguments or
from the ``ETLWORKS_URL`` and ``ETLWORKS_API_KEY`` environment variables.

Library::

    from etlworks_agent import EtlworksAgent, EtlworksAgentError

    agent = EtlworksAgent()                      # or EtlworksAgent("https://host", api_key="...")
    print(agent.chat("How do I create a REST API connection?")["response"])
    for event in agent.chat_stream("How do I schedule a flow?"):
        if event["type"] == "token":
            print(event["content"], end="", flush=True)

    # A long answer that outlives the connection: a break is rejoined automatically, and
    # agent.resume(session_id, last_event_id) rejoins it from anywhere.
    for event in agent.session_chat_stream(session_id, "...", on_disconnect="continue"):
        print(event.id, event)               # each event is a dict with its SSE id

Every failure raises ``EtlworksAgentError`` (a ``requests.HTTPError``) with ``status`` (the HTTP
status, ``None`` when there was no HTTP answer), ``code`` (the server's machine-readable code, e.g.
``invalid_api_key``, ``not_found``, ``cap_exceeded``, ``tool_not_found``) and ``message``.

Command line::

    python etlworks_agent.py tools
    python etlworks_agent.py tool search_knowledge_base '{"query": "REST connection"}'
    python etlworks_agent.py chat "How do I create a connection?"
    python etlworks_agent.py chat-stream "How do I schedule a flow?"
    SESSION=$(python etlworks_agent.py session-create)
    python etlworks_agent.py session-chat "$SESSION" "Create a connection to api.example.com"
    python etlworks_agent.py session-chat-stream "$SESSION" "Now schedule it to run every hour"
    python etlworks_agent.py session-messages "$SESSION"
    python etlworks_agent.py session-chat-stream --on-disconnect continue "$SESSION" "Go on"
    python etlworks_agent.py resume "$SESSION" --after 0123456789abcdef0123456789abcdef:7
    python etlworks_agent.py sessions
    python etlworks_agent.py api-key set sk-...   |   api-key get   |   api-key delete
    python etlworks_agent.py usage

Run ``python etlworks_agent.py --help`` for the options.
"""

import argparse
import codecs
import json
import os
import re
import sys
import threading
import time
from urllib.parse import quote

import requests

__version__ = "1.1.0"

__all__ = [
    "EtlworksAgent",
    "EtlworksAgentError",
    "EtlworksSubagent",
    "SSEParser",
    "StreamEvent",
    "API_PATH",
    "DEFAULT_TIMEOUT",
]

#: Path of the agent API under the server URL.
API_PATH = "/rest/v1/ai-agent/api"
#: Path of the own-OpenAI-key endpoints (not under ``API_PATH``).
KEY_PATH = "/rest/v1/ai-agent/api-key"
#: Seconds to wait for an answer (or, when streaming, between two pieces of the stream).
DEFAULT_TIMEOUT = 600.0
#: Seconds to wait for the connection to open.
CONNECT_TIMEOUT = 15.0
#: How many times in a row a broken stream is rejoined (``GET /sessions/{id}/stream``) before
#: the break is raised; any event received starts the count again.
DEFAULT_MAX_RESUMES = 3

_USER_AGENT = "etlworks-agent-python/" + __version__


class EtlworksAgentError(requests.HTTPError):
    """Any failure of an Integrator Agent call.

    Attributes:
        status: HTTP status (``int``), or ``None`` when the server could not be reached.
        code: machine-readable code (``invalid_api_key``, ``not_found``, ``cap_exceeded``,
            ``tool_not_found``, ``tool_failed``, ``connection_error``, ...), or ``None``.
        message: the human sentence (the server's ``error`` text when there is one).
        body: the parsed JSON body of the answer (or the ``error`` event of a stream), if any.
        retryable: ``True``/``False`` when the server said whether a retry may help, else ``None``.
        field: the request field at fault for a ``400``, if the server named one.
        session_id, last_event_id: for a stream that broke off (``stream_interrupted``), the
            session and the id of the last event received, when known: pass them to
            ``EtlworksAgent.resume`` to rejoin the stream where it broke.

    It is a ``requests.HTTPError``, so ``e.response`` is the HTTP response when there was one.
    """

    def __init__(self, message, status=None, code=None, body=None, retryable=None,
                 response=None, field=None):
        super().__init__(message, response=response)
        self.message = message
        self.status = status
        self.code = code
        self.body = body
        self.retryable = retryable
        self.field = field
        self.session_id = None
        self.last_event_id = None

    def __str__(self):
        parts = []
        if self.status is not None and self.status >= 400:
            parts.append("HTTP %d" % self.status)
        if self.code:
            parts.append(self.code)
        prefix = " ".join(parts)
        text = "%s: %s" % (prefix, self.message) if prefix else str(self.message)
        if self.retryable is True and self.status is not None:
            text += " (retryable)"
        return text

    def __repr__(self):
        return "EtlworksAgentError(status=%r, code=%r, message=%r)" % (
            self.status, self.code, self.message)


def _base_url(url):
    """The server root from what a user may paste: trailing slashes and the API path removed."""
    url = url.strip().rstrip("/")
    for suffix in (API_PATH, KEY_PATH, "/rest/v1/ai-agent"):
        if url.endswith(suffix):
            url = url[: -len(suffix)].rstrip("/")
            break
    return url


class SSEEvent(tuple):
    """One parsed event: the pair ``(event_name, data)``, with the event's ``id`` field as
    ``.id`` (``None`` when the event had no ``id:`` line)."""

    def __new__(cls, name, data, id=None):
        event = super().__new__(cls, (name, data))
        event.id = id
        return event

    def __getnewargs__(self):
        return (self[0], self[1], self.id)


class SSEParser:
    """Incremental Server-Sent Events parser (the WHATWG event-stream rules).

    Feed it bytes as they arrive; it returns the complete events as ``(event_name, data)``
    pairs. Lines end with CRLF, LF or CR; blank lines dispatch; lines starting with ``:`` are
    comments (keep-alives); several ``data:`` lines of one event are joined with ``\\n``; one space
    after the colon is dropped. Each pair also carries the event's own ``id:`` field as ``.id``
    (``None`` without one); ``last_event_id`` is the stream's last id so far, what a browser's
    ``EventSource`` would send back as ``Last-Event-ID``.
    """

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._data = []
        self._event = ""
        self._id = None
        self._first = True
        self.last_event_id = ""

    @property
    def pending_line(self):
        """The start of a line not yet ended (a stream that stops here was cut mid-line)."""
        return "" if self._buffer.endswith("\r") else self._buffer

    def feed(self, chunk):
        """Adds bytes (or text); returns the events completed by them."""
        if isinstance(chunk, bytes):
            chunk = self._decoder.decode(chunk)
        if self._first and chunk:
            chunk = chunk.lstrip("\ufeff")
            self._first = False
        self._buffer += chunk
        events = []
        while True:
            match = re.search(r"\r\n|\r|\n", self._buffer)
            if match is None:
                break
            # A CR at the very end may be the first half of a CRLF: wait for the next byte.
            if match.group() == "\r" and match.end() == len(self._buffer):
                break
            line = self._buffer[: match.start()]
            self._buffer = self._buffer[match.end():]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self):
        """Ends the stream: returns the last event if the stream stopped without a blank line."""
        tail = self._decoder.decode(b"", final=True)
        self._buffer += tail
        events = []
        if self._buffer:
            line = self._buffer.rstrip("\r\n")
            self._buffer = ""
            event = self._line(line)
            if event is not None:
                events.append(event)
        if self._data:
            events.append(self._dispatch())
        return events

    def _line(self, line):
        if line == "":
            return self._dispatch() if self._data else self._reset()
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        # "retry" means nothing to this client; unknown fields are ignored.
        return None

    def _reset(self):
        self._data = []
        self._event = ""
        self._id = None
        return None

    def _dispatch(self):
        event = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
        self._reset()
        return event


class StreamEvent(dict):
    """One event of a chat stream: the event's JSON object as a dict (``event["type"]``, ...),
    with its SSE id as ``event.id`` (``"TURN:SEQ"``, ``None`` from a server without ids).

    Pass ``event.id`` to ``EtlworksAgent.resume`` to rejoin the stream after this event.
    """

    def __init__(self, data=(), id=None):
        super().__init__(data)
        self.id = id

    @property
    def seq(self):
        """The event's number in its turn (``SEQ`` of ``TURN:SEQ``), or ``None``."""
        return _split_id(self.id)[1]

    @property
    def turn_id(self):
        """The turn's id (``TURN`` of ``TURN:SEQ``), or ``None``."""
        return _split_id(self.id)[0]


def _split_id(event_id):
    """``(turn, seq)`` of a ``TURN:SEQ`` event id; ``(None, None)`` for anything else."""
    if not event_id:
        return None, None
    turn, sep, seq = str(event_id).rpartition(":")
    if not sep or not turn or not re.match(r"^[0-9]+$", seq):
        return None, None
    return turn, int(seq)


def _error_from_body(body, status, response=None, default_code=None, default_message=None):
    """An EtlworksAgentError from a parsed error body (``{"error", "code"}`` or ``success: false``)."""
    message = None
    code = default_code
    field = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # {"error": {"message": ..., "code": ...}} (proxies, gateways)
            message = error.get("message")
            code = error.get("code") or code
        elif error is not None:
            message = str(error)
        if body.get("code"):
            code = str(body["code"])
        if message is None and body.get("message"):
            message = str(body["message"])
        field = body.get("field")
    if not message:
        message = default_message or "request failed"
    return EtlworksAgentError(message, status=status, code=code, body=body, response=response,
                              field=field)


class EtlworksAgent:
    """Client of one Integrator Agent server for one API key. Reuses its HTTP connection.

    Args:
        url: server URL, e.g. ``https://app.etlworks.com`` (default: ``$ETLWORKS_URL``).
        api_key: API key (default: ``$ETLWORKS_API_KEY``).
        timeout: seconds to wait for an answer; when streaming, the longest silence accepted
            (the server sends keep-alives). A ``(connect, read)`` tuple is accepted too.
        session: an optional ``requests.Session`` to use.
        max_resumes: how many times in a row a stream that breaks off is rejoined from its last
            event before the break is raised (``0``: never). Applies to ``resume`` and to the
            streams started with ``on_disconnect="continue"``; any event received resets it.
    """

    def __init__(self, url=None, api_key=None, timeout=DEFAULT_TIMEOUT, session=None,
                 max_resumes=DEFAULT_MAX_RESUMES):
        url = url if url is not None else os.environ.get("ETLWORKS_URL", "")
        api_key = api_key if api_key is not None else os.environ.get("ETLWORKS_API_KEY", "")
        if not url or not url.strip():
            raise EtlworksAgentError(
                "No server URL: pass url= or set ETLWORKS_URL (e.g. https://app.etlworks.com)",
                code="missing_url")
        if not api_key or not api_key.strip():
            raise EtlworksAgentError(
                "No API key: pass api_key= or set ETLWORKS_API_KEY", code="missing_api_key")
        base = _base_url(url)
        if not re.match(r"^https?://", base, re.IGNORECASE):
            raise EtlworksAgentError(
                "The server URL must start with http:// or https://: %r" % url, code="invalid_url")
        self.url = base
        self.api_key = api_key.strip()
        if isinstance(timeout, (tuple, list)):
            self.timeout = tuple(timeout)
        elif timeout is None:
            self.timeout = (CONNECT_TIMEOUT, None)
        else:
            self.timeout = (min(CONNECT_TIMEOUT, float(timeout)), float(timeout))
        self.max_resumes = max(0, int(max_resumes))
        self._http = session or requests.Session()
        self._http.headers.update({
            "Authorization": "Bearer " + self.api_key,
            "User-Agent": _USER_AGENT,
        })

    def __repr__(self):
        return "EtlworksAgent(%r)" % self.url

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the pooled HTTP connections."""
        self._http.close()

    # ----------------------------------------------------------------------------------- tools

    def list_tools(self):
        """``GET /tools``: ``{"tools": [{"name", "description", "parameters", "agentic"}], "count"}``."""
        return self._request("GET", "/tools")

    def execute_tool(self, name, args=None):
        """``POST /tools/{name}/execute`` with ``args`` (a dict, or a JSON object as text).

        Returns ``{"tool", "result", "success": True}``; raises ``EtlworksAgentError`` for
        ``tool_not_found`` (``e.body["available_tools"]`` lists the names), ``tool_failed``,
        ``cap_exceeded``, ``permission_denied`` and HTTP errors (``400`` names the bad field).
        """
        if args is None:
            args = {}
        elif isinstance(args, (str, bytes)):
            try:
                args = json.loads(args)
            except ValueError as e:
                raise EtlworksAgentError("The tool arguments are not valid JSON: %s" % e,
                                         code="invalid_json")
        return self._request("POST", "/tools/%s/execute" % quote(str(name), safe=""), json=args)

    # ------------------------------------------------------------------------------------ chat

    def chat(self, message, include_tools=True, system_prompt=None, on_disconnect=None):
        """``POST /chat``: one answer in a new (transient) session.

        Returns ``{"response", "session_id", "tools_used"?, "usage"}``. ``on_disconnect``:
        ``"cancel"`` (the server's default) or ``"continue"``, see ``chat_stream``.
        """
        return self._chat_result(
            self._request("POST", "/chat", json=self._chat_body(message, include_tools,
                                                                 system_prompt, on_disconnect)))

    def chat_stream(self, message, include_tools=True, system_prompt=None, raise_on_error=True,
                    on_disconnect=None):
        """``POST /chat/stream``: a generator of event dicts as they arrive.

        Events: ``session``, ``phase``, ``tool_start``, ``tool_end``, ``token``, ``usage``,
        ``end`` (the last one yielded). Each is a ``StreamEvent``: a dict with the event's SSE
        id as ``event.id`` (``"TURN:SEQ"``). An ``error`` event raises ``EtlworksAgentError``
        (with ``retryable``); with ``raise_on_error=False`` it is yielded as the last event
        instead. The request is sent at once, so HTTP errors (401, 404, ...) raise from this call.

        ``on_disconnect``: what the server does with the turn when the connection goes away
        before its end. ``"cancel"`` (the server's default when ``None``): it stops the turn and
        keeps the partial answer marked interrupted; closing the generator early so stops the
        generation. ``"continue"``: the turn finishes without the client; a connection that
        breaks mid-answer is then rejoined from the last event received (up to ``max_resumes``
        times in a row), so the caller sees one stream, each event once.
        """
        body = self._chat_body(message, include_tools, system_prompt, on_disconnect)
        return self._stream("/chat/stream", body, raise_on_error)

    # -------------------------------------------------------------------------------- sessions

    def create_session(self):
        """``POST /sessions``: creates a session and returns its id (a string)."""
        result = self._request("POST", "/sessions")
        session_id = result.get("session_id") if isinstance(result, dict) else None
        if not session_id:
            raise EtlworksAgentError("The server did not return a session id", status=200,
                                     code="invalid_response", body=result)
        return session_id

    def session_chat(self, session_id, message, include_tools=True, system_prompt=None,
                     on_disconnect=None):
        """``POST /sessions/{id}/chat``: like ``chat``, with the session's history."""
        return self._chat_result(self._request(
            "POST", "/sessions/%s/chat" % self._id(session_id),
            json=self._chat_body(message, include_tools, system_prompt, on_disconnect)))

    def session_chat_stream(self, session_id, message, include_tools=True, system_prompt=None,
                            raise_on_error=True, on_disconnect=None):
        """``POST /sessions/{id}/chat/stream``: like ``chat_stream``, with the session's history."""
        body = self._chat_body(message, include_tools, system_prompt, on_disconnect)
        return self._stream("/sessions/%s/chat/stream" % self._id(session_id), body,
                            raise_on_error, session_id=str(session_id).strip())

    def resume(self, session_id, last_event_id=None, raise_on_error=True):
        """``GET /sessions/{id}/stream``: rejoins the session's turn, a generator of
        ``StreamEvent``s like ``session_chat_stream``'s.

        Replays the events of the running turn (or of the latest one, kept for
        ``INTEGRATOR_STREAM_RETENTION_SECONDS``, 300 s by default, after it ended) that came
        after ``last_event_id`` (an ``event.id``, ``"TURN:SEQ"``, or a bare event number of the
        latest turn), all of them without it, then follows the turn live to its ``end`` or
        ``error``. A connection that breaks is rejoined again (``max_resumes``). The request is
        sent at once: ``404 no_turn`` when no turn is running or kept (read ``get_messages``
        instead), ``400 invalid_field`` (``field`` ``after``) for an unreadable id, ``404
        not_found`` for an unknown session. After the id of a turn's last event (its ``end``)
        there is nothing to yield. Closing the generator does not stop the turn.
        """
        session = str(session_id).strip() if session_id is not None else ""
        response = self._open_rejoin(session_id, last_event_id)
        return self._events(response, raise_on_error, session_id=session, resumable=True,
                            last_event_id=None if last_event_id is None else str(last_event_id),
                            empty_ok=True)

    def get_messages(self, session_id):
        """``GET /sessions/{id}/messages``: ``[{"role": "user"|"assistant", "content"}, ...]``."""
        return self._request("GET", "/sessions/%s/messages" % self._id(session_id))

    def list_sessions(self, limit=None, offset=None):
        """``GET /sessions``: ``{"sessions": [{"session_id", "title", "created_at",
        "updated_at", "message_count"}], "limit", "offset"}``, most recently active first."""
        params = {}
        if limit is not None:
            params["limit"] = int(limit)
        if offset is not None:
            params["offset"] = int(offset)
        return self._request("GET", "/sessions", params=params or None)

    def delete_session(self, session_id):
        """``DELETE /sessions/{id}``: deletes the session and its messages."""
        return self._request("DELETE", "/sessions/%s" % self._id(session_id))

    def stop_session(self, session_id):
        """``POST /sessions/{id}/stop``: stops a running generation; ``{"stopped": bool}``."""
        return self._request("POST", "/sessions/%s/stop" % self._id(session_id))

    # ------------------------------------------------------------------- own key and billing

    def set_api_key(self, key):
        """``POST /rest/v1/ai-agent/api-key``: sets the own OpenAI key (tenant for an admin,
        global for a super-admin)."""
        return self._request("POST", "", json={"api_key": key}, base=KEY_PATH)

    def get_api_key(self):
        """``GET /rest/v1/ai-agent/api-key``: ``{"configured", "scope"?, "masked"?}``."""
        return self._request("GET", "", base=KEY_PATH)

    def delete_api_key(self):
        """``POST /rest/v1/ai-agent/api-key/delete``: removes the own OpenAI key."""
        return self._request("POST", "/delete", base=KEY_PATH)

    def usage(self):
        """``GET /usage``: this month's usage of the caller and the tenant, allowance and wallet."""
        return self._request("GET", "/usage")

    # -------------------------------------------------------------------------------- plumbing

    @staticmethod
    def _id(session_id):
        if not session_id or not str(session_id).strip():
            raise EtlworksAgentError("A session id is required", code="missing_session_id")
        return quote(str(session_id).strip(), safe="")

    @staticmethod
    def _chat_body(message, include_tools, system_prompt, on_disconnect=None):
        body = {"message": message, "include_tools": bool(include_tools)}
        if system_prompt is not None:
            body["system_prompt"] = system_prompt
        if on_disconnect is not None:
            body["on_disconnect"] = on_disconnect  # "cancel" or "continue"; the server checks
        return body

    @staticmethod
    def _chat_result(result):
        """A chat answer that carries ``error`` is a failed turn: raised, the partial answer in
        ``e.body["response"]``."""
        if isinstance(result, dict) and result.get("error"):
            raise _error_from_body(result, 200, default_code="chat_failed")
        return result

    def _send(self, method, path, base=API_PATH, stream=False, **kwargs):
        url = self.url + base + path
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        try:
            return self._http.request(method, url, headers=headers, timeout=self.timeout,
                                      stream=stream, **kwargs)
        except requests.Timeout as e:
            raise EtlworksAgentError("No answer from %s within the timeout (%s)" % (self.url, e),
                                     code="timeout", retryable=True)
        except requests.ConnectionError as e:
            raise EtlworksAgentError("Cannot connect to %s: %s" % (self.url, _short(e)),
                                     code="connection_error", retryable=True)
        except requests.RequestException as e:
            raise EtlworksAgentError("Request to %s failed: %s" % (self.url, _short(e)),
                                     code="request_error")

    def _request(self, method, path, base=API_PATH, **kwargs):
        response = self._send(method, path, base=base, **kwargs)
        try:
            return self._parse(response)
        finally:
            response.close()

    @staticmethod
    def _parse(response):
        """The JSON body of an answer; raises for HTTP errors and ``success: false`` bodies."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if status >= 400:
            default = response.reason or "HTTP error %d" % status
            if body is None:  # e.g. an HTML page from a proxy: its first line
                lines = (response.text or "").strip().splitlines()
                if lines:
                    default = lines[0][:200]
            raise _error_from_body(body, status, response=response, default_message=default)
        if body is None:
            raise EtlworksAgentError(
                "The server's answer is not JSON (HTTP %d, %s)"
                % (status, response.headers.get("Content-Type", "no content type")),
                status=status, code="invalid_response", response=response)
        if isinstance(body, dict) and body.get("success") is False:
            raise _error_from_body(body, status, response=response, default_code="failed")
        return body

    def _stream(self, path, body, raise_on_error, session_id=None):
        response = self._send("POST", path, stream=True, json=body)
        self._expect_stream(response)
        return self._events(response, raise_on_error, session_id=session_id,
                            resumable=body.get("on_disconnect") == "continue")

    def _open_rejoin(self, session_id, last_event_id):
        """``GET /sessions/{id}/stream`` after ``last_event_id`` (all events without one)."""
        params = None if last_event_id is None else {"after": str(last_event_id)}
        response = self._send("GET", "/sessions/%s/stream" % self._id(session_id), stream=True,
                              params=params)
        self._expect_stream(response)
        return response

    def _expect_stream(self, response):
        """Raises (and closes the response) unless it is an event stream."""
        content_type = response.headers.get("Content-Type", "")
        if response.status_code >= 400 or "text/event-stream" not in content_type:
            # An error (or an application-level refusal) answered as JSON instead of a stream.
            try:
                result = self._parse(response)
            finally:
                response.close()
            raise EtlworksAgentError(
                "Expected an event stream, got %s" % (content_type or "no content type"),
                status=response.status_code, code="invalid_response", body=result,
                response=response)

    def _events(self, response, raise_on_error, session_id=None, resumable=False,
                last_event_id=None, empty_ok=False):
        """The events of ``response`` as ``StreamEvent``s, up to ``end`` or ``error``.

        With ``resumable`` (the turn outlives the connection), a stream that breaks off before
        its end is rejoined after the last event received, up to ``max_resumes`` times in a
        row; an event already yielded (by its id) is not yielded again. With ``empty_ok``, a
        first response that ends cleanly without any event (a rejoin after a turn's last event)
        yields nothing.
        """
        session_id = session_id or None
        last_id = last_event_id
        rejoins = 0
        while True:
            received = 0
            try:
                for event in self._read_events(response):
                    received += 1
                    kind = event.get("type")
                    if kind == "session" and not session_id:
                        session_id = event.get("session_id")
                    if _already_seen(event.id, last_id):
                        continue
                    if event.id is not None:
                        last_id = event.id
                    rejoins = 0
                    if kind == "error":
                        if raise_on_error:
                            raise _stream_error(event, response)
                        yield event
                        return
                    yield event
                    if kind == "end":
                        return
                if empty_ok and not received:
                    return  # nothing after the cursor: the turn has ended
                broke = EtlworksAgentError("The event stream ended before its end event",
                                           status=response.status_code,
                                           code="stream_interrupted", retryable=True,
                                           response=response)
            except _StreamBroken as e:
                broke = e.error
            finally:
                response.close()
            broke.session_id = session_id
            broke.last_event_id = last_id
            if not (resumable and session_id and last_id is not None):
                raise broke
            # The turn went on without this connection: rejoin it after the last event.
            empty_ok = False
            response = None
            reason = broke.message
            while response is None:
                if rejoins >= self.max_resumes:
                    raise broke
                rejoins += 1
                if rejoins > 1:
                    time.sleep(min(0.5 * 2 ** (rejoins - 2), 4.0))
                try:
                    response = self._open_rejoin(session_id, last_id)
                except EtlworksAgentError as e:
                    e.session_id = session_id
                    e.last_event_id = last_id
                    if e.status is not None and e.status < 500:
                        raise  # no_turn, not_found, invalid_field: rejoining cannot help
                    broke = EtlworksAgentError("%s; rejoining it failed: %s" % (reason, e.message),
                                               status=e.status, code="stream_interrupted",
                                               retryable=True, response=e.response)
                    broke.session_id = session_id
                    broke.last_event_id = last_id

    def _read_events(self, response):
        """The events of one response as they arrive; a broken connection raises
        ``_StreamBroken``. At the end of the body an event without its blank line is still read,
        unless the stream has ids and that event was cut short (a line unfinished, its id
        missing, its JSON incomplete): a rejoin after the last id sends it whole."""
        parser = SSEParser()
        ids = False
        try:
            for chunk in _iter_chunks(response):
                for raw_event in parser.feed(chunk):
                    event = self._event(raw_event, response)
                    if event is not None:
                        ids = ids or event.id is not None
                        yield event
        except requests.RequestException as e:
            raise _StreamBroken(EtlworksAgentError(
                "The event stream broke off: %s" % _short(e), status=response.status_code,
                code="stream_interrupted", retryable=True, response=response))
        if ids and parser.pending_line:
            return
        for raw_event in parser.close():
            if ids and raw_event.id is None:
                return
            try:
                event = self._event(raw_event, response)
            except EtlworksAgentError:
                if ids:
                    return
                raise
            if event is not None:
                yield event

    @staticmethod
    def _event(event, response):
        name, data = event
        if data.strip() == "[DONE]":
            return None
        try:
            parsed = json.loads(data)
        except ValueError:
            raise EtlworksAgentError("Unreadable event in the stream: %r" % data[:200],
                                     status=response.status_code, code="invalid_response",
                                     response=response)
        event_id = getattr(event, "id", None)
        if not isinstance(parsed, dict):
            return StreamEvent({"type": name, "data": parsed}, id=event_id)
        if "type" not in parsed and name != "message":
            parsed["type"] = name
        return StreamEvent(parsed, id=event_id)


class _StreamBroken(Exception):
    """The connection of a stream broke; ``error`` is the ``stream_interrupted`` to raise."""

    def __init__(self, error):
        super().__init__(error.message)
        self.error = error


def _already_seen(event_id, last_id):
    """True when ``event_id`` comes at or before ``last_id`` in the same turn (a replayed
    event that was already yielded)."""
    turn, seq = _split_id(event_id)
    last_turn, last_seq = _split_id(last_id)
    return turn is not None and turn == last_turn and seq <= last_seq


def _stream_error(event, response):
    return EtlworksAgentError(
        str(event.get("message") or event.get("error") or "the agent failed"),
        status=response.status_code, code=event.get("code") or "stream_error", body=event,
        retryable=event.get("retryable"), response=response)


def _iter_chunks(response):
    """The raw bytes of a streamed response as soon as they arrive."""
    chunked = "chunked" in response.headers.get("Transfer-Encoding", "").lower()
    raw = response.raw
    if not chunked and hasattr(raw, "read1"):
        # Without chunked framing, read() would wait for a full buffer: read what is there.
        while True:
            try:
                data = raw.read1(65536)
            except Exception as e:  # urllib3's own errors are not wrapped by requests here
                raise requests.ConnectionError(e)
            if not data:
                return
            yield data
    else:
        # chunk_size=None yields each HTTP chunk as it is received.
        for data in response.iter_content(chunk_size=None):
            if data:
                yield data


def _short(error):
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] [^'\")\]]+|Connection refused|Read timed out", text)
    return match.group(0) if match else text.splitlines()[0][:300] if text else type(error).__name__


class EtlworksSubagent:
    """Integrator Agent as a subagent: one session, created on first use, for all questions.

    ``ask(question)`` sends the question in the session and returns the answer text, so a
    follow-up question keeps the context. The framework adapters (LangChain, CrewAI, AutoGen)
    delegate to it. Safe to share between threads (questions are sent one at a time).
    """

    def __init__(self, url=None, api_key=None, timeout=DEFAULT_TIMEOUT, agent=None,
                 system_prompt=None, include_tools=True):
        self.agent = agent if agent is not None else EtlworksAgent(url, api_key=api_key,
                                                                   timeout=timeout)
        self.system_prompt = system_prompt
        self.include_tools = include_tools
        self.session_id = None
        self._lock = threading.Lock()

    def ask(self, question):
        """Sends ``question`` in the subagent's session and returns the ``response`` text."""
        if not isinstance(question, str) or not question.strip():
            raise EtlworksAgentError("The question must be a non-empty string",
                                     code="invalid_field")
        with self._lock:
            if self.session_id is None:
                self.session_id = self.agent.create_session()
            try:
                result = self._send(question)
            except EtlworksAgentError as e:
                if e.status != 404:
                    raise
                # The session was deleted on the server: start a new one once.
                self.session_id = self.agent.create_session()
                result = self._send(question)
            return result.get("response", "")

    def reset(self):
        """Forgets the session: the next question starts a new conversation."""
        with self._lock:
            self.session_id = None

    def _send(self, question):
        return self.agent.session_chat(self.session_id, question,
                                       include_tools=self.include_tools,
                                       system_prompt=self.system_prompt)


# ----------------------------------------------------------------------------- command line


def _print_json(value):
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _print_tools(result):
    tools = result.get("tools", [])
    width = max([len(t.get("name", "")) for t in tools] + [4])
    for tool in tools:
        kind = "billed" if tool.get("agentic") else "free"
        print("%-*s  %-6s  %s" % (width, tool.get("name", ""), kind,
                                  " ".join(str(tool.get("description", "")).split())))
    print("%d tools" % result.get("count", len(tools)))


def _print_messages(messages):
    for i, message in enumerate(messages):
        if i:
            print()
        marker = " (interrupted)" if message.get("interrupted") else ""
        print("[%s]%s" % (message.get("role", "?"), marker))
        print(message.get("content", ""))


def _print_sessions(result):
    sessions = result.get("sessions", [])
    for s in sessions:
        title = " ".join(str(s.get("title") or "").split())
        if len(title) > 60:
            title = title[:57] + "..."
        print("%s  %s  %s msgs  %s" % (s.get("session_id"), s.get("updated_at", ""),
                                        s.get("message_count", 0), title))
    if not sessions:
        print("no sessions", file=sys.stderr)


def _stream_to_console(events, as_json):
    """Tokens to stdout as they arrive, progress to stderr."""
    wrote = False
    ended_with_newline = True
    for event in events:
        kind = event.get("type")
        if as_json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            continue
        if kind == "token":
            text = event.get("content", "")
            if text:
                sys.stdout.write(text)
                sys.stdout.flush()
                wrote = True
                ended_with_newline = text.endswith("\n")
        elif kind == "tool_start":
            if wrote and not ended_with_newline:
                sys.stdout.write("\n")
                sys.stdout.flush()
                ended_with_newline = True
            sys.stderr.write("[%s]\n" % (event.get("message") or event.get("tool")))
            sys.stderr.flush()
    if wrote and not ended_with_newline and not as_json:
        sys.stdout.write("\n")
        sys.stdout.flush()


def _build_parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS,
                        help="server URL (default: $ETLWORKS_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS,
                        help="API key (default: $ETLWORKS_API_KEY)")
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS,
                        help="seconds to wait for an answer (default: %d)" % DEFAULT_TIMEOUT)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the raw JSON answer (one JSON event per line for streams)")
    parser = argparse.ArgumentParser(
        prog="etlworks_agent.py", parents=[common],
        description="Command-line client for the Integrator Agent API. The URL and key come from "
                    "ETLWORKS_URL and ETLWORKS_API_KEY unless given as options, which may come "
                    "before or after the command.")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name, help_text):
        return sub.add_parser(name, help=help_text, parents=[common])

    def chat_options(p):
        p.add_argument("--no-tools", action="store_true", help="answer without calling tools")
        p.add_argument("--system-prompt", help="replace the default system prompt")
        p.add_argument("--on-disconnect", choices=["cancel", "continue"],
                       help="what the server does with the turn when this client goes away: "
                            "cancel it (the default) or continue it to its end; with continue "
                            "a stream that breaks is rejoined")

    add("tools", "list the tools")
    p = add("tool", "execute a tool: tool NAME JSON")
    p.add_argument("name")
    p.add_argument("args", nargs="?", default="{}", help="JSON object of arguments (default {})")
    p = add("chat", "one-shot chat: chat MSG")
    p.add_argument("message")
    chat_options(p)
    p = add("chat-stream", "one-shot chat, printing tokens as they arrive")
    p.add_argument("message")
    chat_options(p)
    add("session-create", "create a session and print its id")
    p = add("session-chat", "chat in a session: session-chat ID MSG")
    p.add_argument("session_id")
    p.add_argument("message")
    chat_options(p)
    p = add("session-chat-stream", "session-chat, printing tokens as they arrive")
    p.add_argument("session_id")
    p.add_argument("message")
    chat_options(p)
    p = add("resume", "rejoin a session's running (or latest) turn, printing its events: "
                      "resume ID [--after EVENT_ID]")
    p.add_argument("session_id")
    p.add_argument("--after", metavar="EVENT_ID",
                   help="the id of the last event received (TURN:SEQ, or a bare event number of "
                        "the latest turn); without it the turn is replayed from the start")
    p = add("session-messages", "print a session's conversation")
    p.add_argument("session_id")
    p = add("sessions", "list your sessions, most recent first")
    p.add_argument("--limit", type=int)
    p.add_argument("--offset", type=int)
    p = add("session-delete", "delete a session")
    p.add_argument("session_id")
    p = add("session-stop", "stop the generation running in a session")
    p.add_argument("session_id")
    p = add("api-key", "own OpenAI key: api-key set KEY | get | delete")
    p.add_argument("action", choices=["set", "get", "delete"])
    p.add_argument("key", nargs="?")
    add("usage", "this month's usage, allowance and wallet")
    return parser


def _run(args):
    agent = EtlworksAgent(getattr(args, "url", None), api_key=getattr(args, "api_key", None),
                          timeout=getattr(args, "timeout", DEFAULT_TIMEOUT))
    cmd = args.command
    raw = getattr(args, "json", False)
    include_tools = not getattr(args, "no_tools", False)
    system_prompt = getattr(args, "system_prompt", None)
    on_disconnect = getattr(args, "on_disconnect", None)

    if cmd == "tools":
        result = agent.list_tools()
        _print_json(result) if raw else _print_tools(result)
    elif cmd == "tool":
        result = agent.execute_tool(args.name, args.args)
        _print_json(result) if raw else print(result.get("result", ""))
    elif cmd in ("chat", "session-chat"):
        if cmd == "chat":
            result = agent.chat(args.message, include_tools, system_prompt,
                                on_disconnect=on_disconnect)
        else:
            result = agent.session_chat(args.session_id, args.message, include_tools,
                                        system_prompt, on_disconnect=on_disconnect)
        _print_json(result) if raw else print(result.get("response", ""))
    elif cmd in ("chat-stream", "session-chat-stream"):
        if cmd == "chat-stream":
            events = agent.chat_stream(args.message, include_tools, system_prompt,
                                       on_disconnect=on_disconnect)
        else:
            events = agent.session_chat_stream(args.session_id, args.message, include_tools,
                                               system_prompt, on_disconnect=on_disconnect)
        _stream_to_console(events, raw)
    elif cmd == "resume":
        _stream_to_console(agent.resume(args.session_id, args.after), raw)
    elif cmd == "session-create":
        session_id = agent.create_session()
        _print_json({"session_id": session_id, "created": True}) if raw else print(session_id)
    elif cmd == "session-messages":
        messages = agent.get_messages(args.session_id)
        _print_json(messages) if raw else _print_messages(messages)
    elif cmd == "sessions":
        result = agent.list_sessions(args.limit, args.offset)
        _print_json(result) if raw else _print_sessions(result)
    elif cmd == "session-delete":
        _print_json(agent.delete_session(args.session_id))
    elif cmd == "session-stop":
        _print_json(agent.stop_session(args.session_id))
    elif cmd == "api-key":
        if args.action == "set":
            if not args.key:
                raise EtlworksAgentError("api-key set needs the key: api-key set sk-...",
                                         code="usage")
            _print_json(agent.set_api_key(args.key))
        elif args.key:
            raise EtlworksAgentError("api-key %s takes no key" % args.action, code="usage")
        elif args.action == "get":
            _print_json(agent.get_api_key())
        else:
            _print_json(agent.delete_api_key())
    elif cmd == "usage":
        _print_json(agent.usage())
    return 0


def main(argv=None):
    """Runs the command line; returns the exit status (0 ok, 1 failure, 2 usage, 130 Ctrl-C)."""
    for stream in (sys.stdout, sys.stderr):
        try:  # never fail on a character the console cannot show
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError):
            pass
    args = _build_parser().parse_args(argv)
    try:
        return _run(args)
    except EtlworksAgentError as e:
        sys.stdout.flush()
        hint = ""
        if e.code == "stream_interrupted" and e.session_id and e.last_event_id:
            hint = "; rejoin it with: etlworks_agent.py resume %s --after %s" % (
                e.session_id, e.last_event_id)
        print("etlworks_agent: error: %s%s" % (e, hint), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\netlworks_agent: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1


if __name__ == "__main__":
    sys.exit(main())
