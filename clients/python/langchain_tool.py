"""LangChain adapter: the Integrator Agent as a LangChain tool (``langchain-core``).

    from langchain_tool import EtlworksAgentTool

    integrator = EtlworksAgentTool()        # ETLWORKS_URL / ETLWORKS_API_KEY, or url=, api_key=
    print(integrator.invoke({"question": "Which flows exist and when did they last run?"}))
    llm_with_tools = llm.bind_tools([integrator])     # or give it to any LangChain/LangGraph agent

The tool takes one input, ``question``. One tool instance keeps one Integrator Agent session
(created on the first question), so follow-up questions keep their context. Failures
(``cap_exceeded``, a bad key, ...) raise ``EtlworksAgentError``; with ``handle_tool_error=True``
they are raised as LangChain ``ToolException`` instead, which LangChain returns to the model as
the tool's answer. Put this file next to ``etlworks_agent.py``.
"""

import threading
from typing import Any, Optional, Type

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, PrivateAttr

from etlworks_agent import DEFAULT_TIMEOUT, EtlworksAgentError, EtlworksSubagent

TOOL_NAME = "integrator_agent"
TOOL_DESCRIPTION = (
    "Delegate a data-integration question or task to the Etlworks Integrator Agent, a "
    "specialist that searches the documentation and templates, creates connections and flows, "
    "runs and schedules them, and answers in Markdown. Input: the question or task in plain "
    "language. Follow-up questions keep the context of the earlier ones."
)

__all__ = ["EtlworksAgentTool", "EtlworksAgentInput", "TOOL_NAME", "TOOL_DESCRIPTION"]

_create_lock = threading.Lock()


class EtlworksAgentInput(BaseModel):
    """The tool's one argument."""

    question: str = Field(description="The question or task for the data-integration "
                                      "specialist, in plain language")


class EtlworksAgentTool(BaseTool):
    """The Integrator Agent as a LangChain ``BaseTool``; one session per tool instance."""

    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: Type[BaseModel] = EtlworksAgentInput

    url: Optional[str] = None
    """Server URL (default: ``$ETLWORKS_URL``)."""
    api_key: Optional[str] = Field(default=None, repr=False)
    """API key (default: ``$ETLWORKS_API_KEY``)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for an answer."""
    system_prompt: Optional[str] = None
    """Replaces the Integrator Agent's default system prompt."""

    _subagent: Any = PrivateAttr(default=None)

    def __init__(self, url: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(url=url, **kwargs)

    @property
    def subagent(self) -> EtlworksSubagent:
        """The client and session behind the tool (created on first use)."""
        if self._subagent is None:
            with _create_lock:
                if self._subagent is None:
                    self._subagent = EtlworksSubagent(self.url, api_key=self.api_key,
                                                      timeout=self.timeout,
                                                      system_prompt=self.system_prompt)
        return self._subagent

    @property
    def session_id(self) -> Optional[str]:
        """The Integrator Agent session of this tool, once the first question was sent."""
        return self._subagent.session_id if self._subagent is not None else None

    def reset(self) -> None:
        """Starts a new conversation with the next question."""
        if self._subagent is not None:
            self._subagent.reset()

    def _run(self, question: str, run_manager: Any = None) -> str:
        try:
            return self.subagent.ask(question)
        except EtlworksAgentError as e:
            if self.handle_tool_error:
                raise ToolException(str(e)) from e
            raise
