"""The OpenAI-compatible endpoint (``/v1/models``, ``/v1/chat/completions``): its wire format
with plain ``requests``, then the real ``openai`` and ``langchain-openai`` packages against it,
and every example of ``docs/openai-compatible.md`` run as written with only the server's
address and the API key changed.

The scripted upstream answers ``Echo: <message> (N messages)``, N counting the user and
assistant messages the server sent it, so the tests can see which context a turn had.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from conftest import REPO, SLOW_TOKENS, fenced_blocks

openai = pytest.importorskip("openai", reason="the openai package is not installed "
                                              "(pip install openai)")

MODEL = "integrator-agent"
API = "/rest/v1/ai-agent/api"
TOOL_ANSWER = "Found it: the knowledge base answered."
SLOW_ANSWER = "".join("tick%d " % i for i in range(SLOW_TOKENS))
DOC = REPO / "docs" / "openai-compatible.md"
DOC_URL = "http://127.0.0.1:8080"


# ---------------------------------------------------------------------------------- helpers


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def chat(server, key, messages=None, headers=None, **fields):
    """POST /v1/chat/completions with plain requests; ``fields`` go into the body."""
    body = {"model": MODEL}
    if messages is not None:
        body["messages"] = messages
    body.update(fields)
    sent = {"Authorization": "Bearer " + key} if key is not None else {}
    sent.update(headers or {})
    return requests.post(server.url + "/v1/chat/completions", json=body, headers=sent,
                         timeout=60, stream=bool(fields.get("stream")))


def answer_of(response):
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["message"]["content"]


def read_stream(response):
    """The stream's events in order: ``("data", chunk)``, ``("comment", text)``, ``("done",)``.
    Reads up to ``data: [DONE]``."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/event-stream")
    response.encoding = "utf-8"
    events = []
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":"):
            events.append(("comment", line[1:].strip()))
        elif line.startswith("data:"):
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                events.append(("done",))
                response.close()
                break
            events.append(("data", json.loads(data)))
    return events


def chunks_of(events):
    return [event[1] for event in events if event[0] == "data"]


def streamed_text(chunks):
    return "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["choices"])


def assert_openai_error(response, status):
    """The body is OpenAI's error shape; returns its ``error`` object."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def messages_of(server, key, session_id):
    response = requests.get(server.url + API + "/sessions/%s/messages" % session_id,
                            headers={"Authorization": "Bearer " + key}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def create_session(server, key):
    response = requests.post(server.url + API + "/sessions", timeout=30,
                             headers={"Authorization": "Bearer " + key})
    return response.json()["session_id"]


def client(server, key, **options):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, timeout=60, **options)


# ------------------------------------------------------------------------------------ models


def test_models_lists_integrator_agent(server):
    response = requests.get(server.url + "/v1/models", timeout=30,
                            headers={"Authorization": "Bearer " + server.admin_key})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    [model] = body["data"]
    assert set(model) == {"id", "object", "created", "owned_by"}
    assert (model["id"], model["object"], model["owned_by"]) == (MODEL, "model", MODEL)
    assert isinstance(model["created"], int)


def test_one_model_by_its_id(server):
    response = requests.get(server.url + "/v1/models/" + MODEL, timeout=30,
                            headers={"Authorization": "Bearer " + server.admin_key})
    assert response.status_code == 200, response.text
    listed = requests.get(server.url + "/v1/models", timeout=30,
                          headers={"Authorization": "Bearer " + server.admin_key}).json()
    assert response.json() == listed["data"][0]


# ------------------------------------------------------------------- chat completions (wire)


def test_a_completion_has_openais_shape_and_the_session(server):
    response = chat(server, server.admin_key, [user("hello")])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"id", "object", "created", "model", "choices", "usage", "session_id",
                         "tools_used"}
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", MODEL)
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert (choice["index"], choice["finish_reason"], choice["logprobs"]) == (0, "stop", None)
    assert (choice["message"]["role"], choice["message"]["content"]) == \
        ("assistant", "Echo: hello (1 messages)")
    usage = body["usage"]
    assert all(isinstance(usage[k], int) for k in ("prompt_tokens", "completion_tokens"))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert body["tools_used"] == []
    assert body["session_id"] and response.headers["X-Session-Id"] == body["session_id"]


def test_tools_used_names_the_agents_tools(server):
    body = chat(server, server.admin_key, [user("[tool] find it")]).json()
    assert body["choices"][0]["message"]["content"] == TOOL_ANSWER
    assert body["tools_used"] == ["search_knowledge_base"]


def test_the_turn_is_stored_in_its_session(server):
    body = chat(server, server.admin_key, [user("remember me")]).json()
    assert messages_of(server, server.admin_key, body["session_id"]) == [
        {"role": "user", "content": "remember me"},
        {"role": "assistant", "content": "Echo: remember me (1 messages)"}]


def test_earlier_messages_are_the_context(server):
    messages = [user("one"), assistant("two"), user("three"), assistant("four"), user("five")]
    assert answer_of(chat(server, server.admin_key, messages)) == "Echo: five (5 messages)"


def test_content_may_be_a_list_of_text_parts(server):
    parts = [{"type": "text", "text": "first part"}, {"type": "text", "text": "second part"}]
    answer = answer_of(chat(server, server.admin_key, [user(parts)]))
    assert answer.startswith("Echo: ") and answer.endswith(" (1 messages)")
    assert "first part" in answer and "second part" in answer


@pytest.mark.parametrize("role", ["system", "developer"])
def test_system_and_developer_messages_join_the_agents_instructions(server, upstream, role):
    marker = "Answer in the voice of a lighthouse keeper %s-%d." % (role, time.time_ns())
    messages = [{"role": role, "content": marker}, user("who are you")]
    assert answer_of(chat(server, server.admin_key, messages)) == \
        "Echo: who are you (1 messages)", "not a conversation message"
    [sent] = upstream.requests_with(marker)
    [instructions] = [m for m in sent["body"]["messages"] if marker in str(m.get("content"))]
    assert instructions["role"] == "system"
    system = "\n".join(str(m.get("content")) for m in sent["body"]["messages"]
                       if m.get("role") == "system")
    assert system.strip() != marker, "added to the agent's own instructions, not instead"


@pytest.mark.parametrize("how", ["header", "metadata"])
def test_a_named_session_is_continued_with_its_history(server, how):
    key = server.admin_key
    session_id = chat(server, key, [user("start")]).json()["session_id"]
    named = {"headers": {"X-Session-Id": session_id}} if how == "header" else \
        {"metadata": {"session_id": session_id}}
    # The earlier messages of the request are ignored: the stored history is the context.
    response = chat(server, key, [user("ignored"), assistant("ignored too"), user("go on")],
                    **named)
    assert answer_of(response) == "Echo: go on (3 messages)"
    assert response.json()["session_id"] == response.headers["X-Session-Id"] == session_id
    assert [m["content"] for m in messages_of(server, key, session_id)] == [
        "start", "Echo: start (1 messages)", "go on", "Echo: go on (3 messages)"]


def test_a_session_created_over_rest_can_be_named(server):
    session_id = create_session(server, server.admin_key)
    response = chat(server, server.admin_key, [user("first words")],
                    headers={"X-Session-Id": session_id})
    assert answer_of(response) == "Echo: first words (1 messages)"
    assert len(messages_of(server, server.admin_key, session_id)) == 2


def test_another_users_session_is_404(server):
    session_id = create_session(server, server.admin_key)
    other = server.new_key("oaiothers", "other@oai.example.com")
    response = chat(server, other, [user("not mine")], headers={"X-Session-Id": session_id})
    assert assert_openai_error(response, 404)["code"] == "not_found"
    assert messages_of(server, server.admin_key, session_id) == []


# ---------------------------------------------------------------------------- streaming (wire)


def test_a_stream_is_openai_chunks_with_tool_comments(server):
    response = chat(server, server.admin_key, [user("[tool] find it")], stream=True,
                    stream_options={"include_usage": True})
    session_id = response.headers["X-Session-Id"]
    events = read_stream(response)
    chunks = chunks_of(events)
    assert events[-1] == ("done",)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    for c in chunks:
        assert (c["object"], c["model"], c["session_id"]) == \
            ("chat.completion.chunk", MODEL, session_id)
    first, *middle, finish, usage = chunks
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert streamed_text(chunks) == TOOL_ANSWER
    assert finish["choices"][0]["delta"] == {}
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in [first] + middle)
    assert usage["choices"] == []
    assert usage["usage"]["total_tokens"] == \
        usage["usage"]["prompt_tokens"] + usage["usage"]["completion_tokens"] > 0
    comments = [e[1] for e in events if e[0] == "comment"]
    start, end = "tool_start search_knowledge_base", "tool_end search_knowledge_base"
    assert start in comments and end in comments
    where = {e[1]: i for i, e in enumerate(events) if e[0] == "comment"}
    first_text = next(i for i, e in enumerate(events)
                      if e[0] == "data" and e[1]["choices"] and e[1]["choices"][0]["delta"].get(
                          "content"))
    assert where[start] < where[end] < first_text


def test_without_include_usage_there_is_no_usage_chunk(server):
    chunks = chunks_of(read_stream(chat(server, server.admin_key, [user("short")], stream=True)))
    assert all(c["choices"] for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert streamed_text(chunks) == "Echo: short (1 messages)"


# -------------------------------------------------------------------------------- errors (wire)


def test_a_missing_key_is_401_invalid_api_key(server):
    error = assert_openai_error(chat(server, None, [user("hi")]), 401)
    assert error["code"] == "invalid_api_key"


def test_a_wrong_key_is_401_invalid_api_key(server):
    error = assert_openai_error(chat(server, "x" * 64, [user("hi")]), 401)
    assert error["code"] == "invalid_api_key"


def test_another_model_is_404_model_not_found(server):
    error = assert_openai_error(chat(server, server.admin_key, [user("hi")], model="gpt-4o"), 404)
    assert error["code"] == "model_not_found"


BAD_BODIES = {
    "no messages": ({}, "messages"),
    "empty messages": ({"messages": []}, "messages"),
    "last message not from the user": ({"messages": [user("hi"), assistant("hello")]},
                                       "messages"),
    "two choices": ({"messages": [user("hi")], "n": 2}, "n"),
    "client tools": ({"messages": [user("hi")], "tools": [{"type": "function", "function": {
        "name": "lookup", "parameters": {"type": "object", "properties": {}}}}]}, "tools"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_a_bad_body_is_400_naming_the_field(server, case):
    fields, param = BAD_BODIES[case]
    error = assert_openai_error(chat(server, server.admin_key, **fields), 400)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param or (error["param"] or "").startswith(param + "["), error


def test_a_capped_tenant_is_429_insufficient_quota(server, capped_key, needs_billing):
    response = chat(server, capped_key, [user("hi")])
    error = assert_openai_error(response, 429)
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert response.headers["x-should-retry"] == "false"


# ---------------------------------------------------------------------------- the openai SDK


def test_the_sdk_lists_and_retrieves_the_model(server):
    sdk = client(server, server.admin_key)
    assert [m.id for m in sdk.models.list()] == [MODEL]
    model = sdk.models.retrieve(MODEL)
    assert (model.id, model.object, model.owned_by) == (MODEL, "model", MODEL)


def test_the_sdk_chats(server):
    completion = client(server, server.admin_key).chat.completions.create(
        model=MODEL, messages=[user("hello sdk")])
    assert completion.choices[0].message.content == "Echo: hello sdk (1 messages)"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens > 0
    assert completion.session_id and completion.tools_used == []


def test_the_sdk_sees_the_session_header_and_continues_the_session(server):
    sdk = client(server, server.admin_key)
    raw = sdk.chat.completions.with_raw_response.create(model=MODEL, messages=[user("raw")])
    session_id = raw.headers["x-session-id"]
    assert raw.parse().session_id == session_id
    follow_up = sdk.chat.completions.create(model=MODEL, messages=[user("and then")],
                                            metadata={"session_id": session_id})
    assert follow_up.choices[0].message.content == "Echo: and then (3 messages)"
    by_header = sdk.chat.completions.create(model=MODEL, messages=[user("and after")],
                                            extra_headers={"X-Session-Id": session_id})
    assert by_header.choices[0].message.content == "Echo: and after (5 messages)"


def test_the_sdk_streams(server):
    stream = client(server, server.admin_key).chat.completions.create(
        model=MODEL, messages=[user("[tool] stream it")], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TOOL_ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
    assert len({c.session_id for c in chunks}) == 1


def test_the_sdk_raises_authentication_error(server):
    with pytest.raises(openai.AuthenticationError) as error:
        client(server, "x" * 64).chat.completions.create(model=MODEL, messages=[user("hi")])
    assert error.value.status_code == 401 and error.value.code == "invalid_api_key"


def test_the_sdk_raises_not_found_for_another_model(server):
    with pytest.raises(openai.NotFoundError) as error:
        client(server, server.admin_key).chat.completions.create(model="gpt-4o",
                                                                 messages=[user("hi")])
    assert error.value.code == "model_not_found"


def test_the_sdk_raises_bad_request_naming_the_field(server):
    with pytest.raises(openai.BadRequestError) as error:
        client(server, server.admin_key).chat.completions.create(
            model=MODEL, messages=[user("hi")], n=2)
    assert (error.value.type, error.value.param) == ("invalid_request_error", "n")


def test_the_sdk_raises_rate_limit_at_once_without_retrying(server, capped_key, needs_billing):
    sdk = client(server, capped_key, max_retries=2)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as error:
        sdk.chat.completions.create(model=MODEL, messages=[user("hi")])
    assert error.value.code == "insufficient_quota"
    # The SDK numbers its attempts; the request that failed was the first and only one.
    assert error.value.response.request.headers["x-stainless-retry-count"] == "0"
    assert time.monotonic() - started < 5


# -------------------------------------------------------------------------------- LangChain


def chat_model(server):
    langchain_openai = pytest.importorskip("langchain_openai", reason="langchain-openai is not "
                                                                      "installed")
    return langchain_openai.ChatOpenAI(model=MODEL, base_url=server.url + "/v1",
                                       api_key=server.admin_key, timeout=60)


def test_langchain_invokes_the_agent(server):
    reply = chat_model(server).invoke("hello langchain")
    assert "Echo" in reply.content
    assert reply.content == "Echo: hello langchain (1 messages)"


def test_langchain_streams_the_agent(server):
    pieces = [piece.content for piece in chat_model(server).stream("[slow] stream it")]
    assert len([p for p in pieces if p]) > 1, pieces
    assert "".join(pieces) == SLOW_ANSWER


# ------------------------------------------------------------------ the docs, as written


def doc_blocks(language):
    return [code for lang, code in fenced_blocks(DOC) if lang == language]


def with_server(text, server):
    return text.replace(DOC_URL, server.url).replace("YOUR_API_KEY", server.admin_key)


def run_python(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], cwd=str(tmp_path), timeout=120,
                            capture_output=True, text=True,
                            env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def python_example(containing):
    [example] = [b for b in doc_blocks("python") if containing in b]
    return example


def test_the_doc_examples_are_all_run():
    """A new example in the doc needs a test below: the blocks are counted here."""
    languages = [lang for lang, _ in fenced_blocks(DOC)]
    assert sorted(set(languages)) == ["", "bash", "json", "python"]
    assert languages.count("python") == 4 and languages.count("bash") == 2
    assert languages.count("json") == 2, "a response and an error"


def test_the_quick_example(server, tmp_path):
    out = run_python(with_server(python_example("print(\"session:\""), server), tmp_path)
    assert out.startswith("Echo: How do I create a REST API connection? (1 messages)\nsession: ")


def test_the_session_example(server, tmp_path):
    out = run_python(with_server(python_example("metadata={\"session_id\""), server), tmp_path)
    assert out.splitlines() == ["Echo: Create a connection to api.example.com (1 messages)",
                                "Echo: Now schedule it to run every hour (3 messages)"]


def test_the_streaming_example(server, tmp_path):
    out = run_python(with_server(python_example("stream=True"), server), tmp_path)
    first, tokens = out.splitlines()
    assert first == "Echo: How do I schedule a flow? (1 messages)"
    assert re.fullmatch(r"tokens: [1-9][0-9]*", tokens)


def test_the_langchain_example(server, tmp_path):
    pytest.importorskip("langchain_openai", reason="langchain-openai is not installed")
    out = run_python(with_server(python_example("ChatOpenAI"), server), tmp_path)
    assert out.splitlines() == ["Echo: How do I create a REST API connection? (1 messages)",
                                "Echo: How do I schedule a flow? (1 messages)"]


def run_bash(script, server):
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    env = dict(os.environ, ETLWORKS_URL=server.url, ETLWORKS_API_KEY=server.admin_key)
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_curl_example(server):
    [script] = [b for b in doc_blocks("bash") if "jq" in b]
    assert run_bash(script, server) == "Echo: How do I create a REST API connection? " \
                                       "(1 messages)\n"


def test_the_streaming_curl_example(server):
    [script] = [b for b in doc_blocks("bash") if '"stream": true' in b]
    lines = [line for line in run_bash(script, server).splitlines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[len("data: "):]) for line in lines
              if line.startswith("data: {")]
    assert streamed_text(chunks) == "Echo: How do I schedule a flow? (1 messages)"


def test_the_documented_response_and_error_have_the_real_fields(server, capped_key,
                                                                needs_billing):
    documented = {"error" if "error" in b else "response": json.loads(b)
                  for b in doc_blocks("json")}
    real = chat(server, server.admin_key, [user("fields")]).json()
    assert set(documented["response"]) == set(real)
    assert set(documented["response"]["choices"][0]) == set(real["choices"][0])
    assert set(documented["response"]["usage"]) == set(real["usage"])
    error = chat(server, capped_key, [user("fields")]).json()
    assert set(documented["error"]["error"]) == set(error["error"])
    assert documented["error"]["error"]["code"] == error["error"]["code"]
