"""AutoGen adapter: the Integrator Agent as an AutoGen tool.

AutoGen 0.4+ (``autogen-agentchat``)::

    from autogen_agentchat.agents import AssistantAgent
    from autogen_tool import ask_etlworks_agent, make_etlworks_tool

    agent = AssistantAgent("planner", model_client=..., tools=[ask_etlworks_agent])
    # or, with its own URL/key and session:  tools=[make_etlworks_tool(url=..., api_key=...)]

AutoGen 0.2 / AG2::

    register_function(ask_etlworks_agent, caller=assistant, executor=user_proxy,
                      description="Ask the Integrator Agent data-integration specialist.")

``ask_etlworks_agent(question)`` is a plain function (this module imports no AutoGen package):
it uses ``ETLWORKS_URL`` / ``ETLWORKS_API_KEY`` and one Integrator Agent session, created on the
first question and kept for the process, so follow-up questions keep their context.
``make_etlworks_tool()`` returns an ``autogen_core.tools.FunctionTool`` with its own client and
session. Failures (``cap_exceeded``, a bad key, ...) raise ``EtlworksAgentError``; AutoGen hands
the error to the model as the tool's result. Put this file next to ``etlworks_agent.py``.
"""

import threading

from etlworks_agent import DEFAULT_TIMEOUT, EtlworksSubagent

TOOL_NAME = "ask_etlworks_agent"
TOOL_DESCRIPTION = (
    "Delegate a data-integration question or task to the Etlworks Integrator Agent, a "
    "specialist that searches the documentation and templates, creates connections and flows, "
    "runs and schedules them, and answers in Markdown. Input: the question or task in plain "
    "language. Follow-up questions keep the context of the earlier ones."
)

__all__ = ["ask_etlworks_agent", "make_etlworks_tool", "reset_default_session", "TOOL_NAME",
           "TOOL_DESCRIPTION"]

_default = None
_default_lock = threading.Lock()


def _default_subagent():
    global _default
    with _default_lock:
        if _default is None:
            _default = EtlworksSubagent()
        return _default


def ask_etlworks_agent(question: str) -> str:
    """Ask the Etlworks Integrator Agent, a data-integration specialist, a question or give it a
    task in plain language (search docs and templates, create connections and flows, run and
    schedule them). Follow-up questions keep the context. Returns its answer in Markdown."""
    return _default_subagent().ask(question)


def reset_default_session():
    """Makes ``ask_etlworks_agent`` start a new conversation (and re-read the environment)."""
    global _default
    with _default_lock:
        _default = None


def make_etlworks_tool(url=None, api_key=None, timeout=DEFAULT_TIMEOUT, name=TOOL_NAME,
                       description=TOOL_DESCRIPTION, system_prompt=None):
    """An ``autogen_core.tools.FunctionTool`` with its own client and session."""
    from autogen_core.tools import FunctionTool

    subagent = EtlworksSubagent(url, api_key=api_key, timeout=timeout,
                                system_prompt=system_prompt)

    def ask_etlworks_agent(question: str) -> str:
        return subagent.ask(question)

    tool = FunctionTool(ask_etlworks_agent, description=description, name=name)
    tool.subagent = subagent
    return tool
