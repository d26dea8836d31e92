"""CrewAI adapter: the Integrator Agent as a CrewAI tool (``crewai``).

    from crewai import Agent
    from crewai_tool import EtlworksAgentTool

    engineer = Agent(role="Data integration engineer", goal="...", backstory="...",
                     tools=[EtlworksAgentTool()])   # ETLWORKS_URL / ETLWORKS_API_KEY, or url=, api_key=

The tool takes one input, ``question``. One tool instance keeps one Integrator Agent session
(created on the first question), so follow-up questions keep their context. Results are not
cached (the same question can have a new answer later in a conversation). Failures
(``cap_exceeded``, a bad key, ...) raise ``EtlworksAgentError``, which CrewAI reports to the agent
as a tool error. Put this file next to ``etlworks_agent.py``.
"""

import threading
from typing import Any, Callable, Optional, Type

from crewai.tools import BaseTool
from pydantic import BaseModel, Field, PrivateAttr

from etlworks_agent import DEFAULT_TIMEOUT, EtlworksSubagent

TOOL_NAME = "integrator_agent"
TOOL_DESCRIPTION = (
    "Delegate a data-integration question or task to the Etlworks Integrator Agent, a "
    "specialist that searches the documentation and templates, creates connections and flows, "
    "runs and schedules them, and answers in Markdown. Input: the question or task in plain "
    "language. Follow-up questions keep the context of the earlier ones."
)

__all__ = ["EtlworksAgentTool", "EtlworksAgentInput", "TOOL_NAME", "TOOL_DESCRIPTION"]

_create_lock = threading.Lock()


def _never_cache(_args: Any = None, _result: Any = None) -> bool:
    return False


class EtlworksAgentInput(BaseModel):
    """The tool's one argument."""

    question: str = Field(..., description="The question or task for the data-integration "
                                           "specialist, in plain language")


class EtlworksAgentTool(BaseTool):
    """The Integrator Agent as a CrewAI ``BaseTool``; one session per tool instance."""

    name: str = TOOL_NAME
    description: str = TOOL_DESCRIPTION
    args_schema: Type[BaseModel] = EtlworksAgentInput
    cache_function: Callable = _never_cache

    url: Optional[str] = None
    api_key: Optional[str] = Field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT
    system_prompt: Optional[str] = None

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

    def _run(self, question: str) -> str:
        return self.subagent.ask(question)
