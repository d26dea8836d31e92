"""The framework adapters with the real framework packages, against the real server: each tool
is called the way its framework calls tools, and keeps one Integrator Agent session."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR
from etlworks_agent import EtlworksAgentError

EXAMPLES = PYTHON_DIR / "examples"


def _framework(module, package):
    try:
        return pytest.importorskip(module, reason="%s cannot be imported here (pip install %s)"
                                   % (package, package))
    except ImportError as e:  # installed but broken on this Python
        pytest.skip("%s is installed but cannot be imported: %s" % (package, e))


def _run_example(name, server, timeout=120):
    env = dict(os.environ, ETLWORKS_URL=server.url, ETLWORKS_API_KEY=server.admin_key,
               PYTHONIOENCODING="utf-8", CREWAI_DISABLE_TELEMETRY="true",
               OTEL_SDK_DISABLED="true")
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, cwd=str(PYTHON_DIR),
                            capture_output=True, text=True, timeout=timeout, encoding="utf-8")
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


# --------------------------------------------------------------------------------- LangChain


def test_langchain_tool(server, agent):
    _framework("langchain_core", "langchain-core")
    from langchain_core.messages import ToolMessage
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from langchain_tool import EtlworksAgentTool

    tool = EtlworksAgentTool(server.url, api_key=server.admin_key)
    spec = convert_to_openai_tool(tool)["function"]
    assert spec["name"] == "integrator_agent"
    assert spec["parameters"]["required"] == ["question"]

    assert tool.invoke({"question": "Create a connection to api.example.com"}) \
        == "Echo: Create a connection to api.example.com (1 messages)"
    session = tool.session_id
    assert session
    # As an agent (LangGraph's ToolNode, AgentExecutor) calls it: a model's tool call.
    message = tool.invoke({"type": "tool_call", "id": "call_7", "name": "integrator_agent",
                           "args": {"question": "Now schedule it to run every hour"}})
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call_7"
    assert message.content == "Echo: Now schedule it to run every hour (3 messages)"
    # The async path.
    answer = asyncio.run(tool.ainvoke({"question": "[tool] look it up"}))
    assert answer == "Found it: the knowledge base answered."
    assert tool.session_id == session, "one session for the tool instance"
    assert [m["role"] for m in agent.get_messages(session)] == ["user", "assistant"] * 3


def test_langchain_tool_errors(server, capped_key, needs_billing):
    _framework("langchain_core", "langchain-core")
    from langchain_tool import EtlworksAgentTool

    tool = EtlworksAgentTool(server.url, api_key=capped_key)
    with pytest.raises(EtlworksAgentError) as e:
        tool.invoke({"question": "anything"})
    assert e.value.code == "cap_exceeded"
    handled = EtlworksAgentTool(server.url, api_key=capped_key, handle_tool_error=True)
    message = handled.invoke({"type": "tool_call", "id": "c", "name": "integrator_agent",
                              "args": {"question": "anything"}})
    assert "cap_exceeded" in message.content and "AI usage cap exceeded" in message.content


def test_langchain_example(server):
    _framework("langchain_core", "langchain-core")
    out = _run_example("langchain_example.py", server)
    assert "Echo: Which templates load a REST API into PostgreSQL? (1 messages)" in out
    assert "ToolMessage call_1" in out
    assert "(3 messages)" in out


# ------------------------------------------------------------------------------------ CrewAI


@pytest.fixture(scope="module")
def crewai_env():
    os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    return _framework("crewai", "crewai")


def test_crewai_tool(server, agent, crewai_env):
    from crewai.tools import BaseTool

    from crewai_tool import EtlworksAgentTool

    tool = EtlworksAgentTool(server.url, api_key=server.admin_key)
    assert isinstance(tool, BaseTool)
    assert tool.name == "integrator_agent"
    assert tool.run(question="Create a connection to api.example.com") \
        == "Echo: Create a connection to api.example.com (1 messages)"
    session = tool.session_id
    # As a CrewAI agent calls it: the structured tool with the model's JSON arguments.
    structured = tool.to_structured_tool()
    assert structured.invoke('{"question": "Now schedule it to run every hour"}') \
        == "Echo: Now schedule it to run every hour (3 messages)"
    # The same question again is asked again (no cached answer): the conversation moved on.
    assert tool.run(question="Now schedule it to run every hour") \
        == "Echo: Now schedule it to run every hour (5 messages)"
    assert tool.session_id == session
    assert len(agent.get_messages(session)) == 6


def test_crewai_crew_delegates_to_the_tool(server, agent, crewai_env):
    """A whole crew: CrewAI's agent loop, driven by a scripted LLM, calls the tool and hands its
    answer back to the LLM."""
    from crewai import Agent, Crew, Task
    from crewai.llms.base_llm import BaseLLM

    from crewai_tool import EtlworksAgentTool

    class ScriptedLLM(BaseLLM):
        prompts: list = []

        def call(self, messages, tools=None, callbacks=None, available_functions=None,
                 from_task=None, from_agent=None, response_model=None, **kwargs):
            text = json.dumps(messages) if not isinstance(messages, str) else messages
            self.prompts.append(text)
            if len(self.prompts) == 1:
                return ("Thought: the specialist should do this.\nAction: integrator_agent\n"
                        'Action Input: {"question": "Set up a daily sync from the orders API"}')
            return "Thought: I now know the final answer\nFinal Answer: delegated"

        def supports_function_calling(self):
            return False

        def supports_stop_words(self):
            return False

        def get_context_window_size(self):
            return 8192

    tool = EtlworksAgentTool(server.url, api_key=server.admin_key)
    llm = ScriptedLLM(model="scripted")
    engineer = Agent(role="Data integration engineer", goal="Build reliable pipelines",
                     backstory="You delegate pipeline work to the Integrator Agent specialist.",
                     tools=[tool], llm=llm, verbose=False)
    task = Task(description="Set up a daily sync from the orders API.",
                expected_output="What was done.", agent=engineer)
    result = Crew(agents=[engineer], tasks=[task]).kickoff()
    assert "delegated" in str(result)
    assert tool.session_id, "the crew called the tool"
    assert agent.get_messages(tool.session_id)[0]["content"] == \
        "Set up a daily sync from the orders API"
    assert len(llm.prompts) >= 2
    assert "Echo: Set up a daily sync from the orders API (1 messages)" in llm.prompts[-1], \
        "the tool's answer went back to the model"


def test_crewai_tool_errors(server, capped_key, crewai_env, needs_billing):
    from crewai_tool import EtlworksAgentTool

    tool = EtlworksAgentTool(server.url, api_key=capped_key)
    with pytest.raises(EtlworksAgentError) as e:
        tool.run(question="anything")
    assert e.value.code == "cap_exceeded"


def test_crewai_example(server, crewai_env):
    out = _run_example("crewai_example.py", server)
    assert "Echo: Is there a template for CSV files to PostgreSQL? (1 messages)" in out
    assert "Echo: How do I preview it before importing? (3 messages)" in out


# ------------------------------------------------------------------------------------ AutoGen


def test_autogen_function_tool(server, agent):
    _framework("autogen_core", "autogen-agentchat")
    from autogen_core import CancellationToken

    from autogen_tool import make_etlworks_tool

    tool = make_etlworks_tool(server.url, api_key=server.admin_key)
    assert tool.name == "ask_etlworks_agent"
    assert tool.schema["parameters"]["required"] == ["question"]

    async def calls():
        token = CancellationToken()
        first = await tool.run_json({"question": "Create a connection to api.example.com"}, token)
        second = await tool.run_json({"question": "Now schedule it"}, token)
        return tool.return_value_as_string(first), tool.return_value_as_string(second)

    first, second = asyncio.run(calls())
    assert first == "Echo: Create a connection to api.example.com (1 messages)"
    assert second == "Echo: Now schedule it (3 messages)"
    assert len(agent.get_messages(tool.subagent.session_id)) == 4


def test_autogen_assistant_agent_calls_the_plain_function(server, monkeypatch):
    _framework("autogen_agentchat", "autogen-agentchat")
    replay = _framework("autogen_ext.models.replay", "autogen-ext")
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.messages import ToolCallExecutionEvent
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage

    import autogen_tool

    monkeypatch.setenv("ETLWORKS_URL", server.url)
    monkeypatch.setenv("ETLWORKS_API_KEY", server.admin_key)
    autogen_tool.reset_default_session()

    def tool_call(question):
        return CreateResult(
            finish_reason="function_calls", usage=RequestUsage(prompt_tokens=1,
                                                               completion_tokens=1),
            cached=False, content=[FunctionCall(id="call_1", name="ask_etlworks_agent",
                                                arguments=json.dumps({"question": question}))])

    model = replay.ReplayChatCompletionClient(
        [tool_call("Is there a template for CSV files to PostgreSQL?"),
         tool_call("Preview it")],
        model_info={"vision": False, "function_calling": True, "json_output": False,
                    "family": "unknown", "structured_output": False})

    async def run():
        planner = AssistantAgent("planner", model_client=model,
                                 tools=[autogen_tool.ask_etlworks_agent])
        first = await planner.run(task="Find a CSV to PostgreSQL template")
        second = await planner.run(task="Preview it")
        return first, second

    try:
        first, second = asyncio.run(run())
    finally:
        autogen_tool.reset_default_session()
    results = []
    for outcome in (first, second):
        executions = [m for m in outcome.messages if isinstance(m, ToolCallExecutionEvent)]
        assert len(executions) == 1
        result = executions[0].content[0]
        assert result.is_error is False, result.content
        results.append(result.content)
    assert results == ["Echo: Is there a template for CSV files to PostgreSQL? (1 messages)",
                       "Echo: Preview it (3 messages)"]


def test_autogen_tool_errors(server, capped_key, needs_billing):
    _framework("autogen_core", "autogen-agentchat")
    from autogen_core import CancellationToken

    from autogen_tool import make_etlworks_tool

    tool = make_etlworks_tool(server.url, api_key=capped_key)
    with pytest.raises(EtlworksAgentError) as e:
        asyncio.run(tool.run_json({"question": "anything"}, CancellationToken()))
    assert e.value.code == "cap_exceeded"


def test_autogen_example(server):
    _framework("autogen_core", "autogen-agentchat")
    out = _run_example("autogen_example.py", server)
    assert "Echo: Which connections can I create? (1 messages)" in out
    assert "Echo: Create the first one for api.example.com. (3 messages)" in out
