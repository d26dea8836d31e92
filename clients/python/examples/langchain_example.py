#!/usr/bin/env python3
"""Integrator Agent as a LangChain tool.

    pip install requests langchain-core
    export ETLWORKS_URL="http://127.0.0.1:8080" ETLWORKS_API_KEY="your-api-key"
    python examples/langchain_example.py

Calls the tool the way a LangChain agent does (a model's tool call in, a ToolMessage out), twice
in the same Integrator Agent session. With ``--with-llm`` (and ``pip install langchain
langchain-openai``, ``OPENAI_API_KEY`` set) it also lets a LangChain agent delegate to it.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from langchain_tool import EtlworksAgentTool  # noqa: E402


def main():
    integrator = EtlworksAgentTool()

    # Called directly, with the tool's one argument.
    print(integrator.invoke({"question": "Which templates load a REST API into PostgreSQL?"}))

    # Called as a LangChain agent calls a tool: a tool call from the model, a ToolMessage back.
    message = integrator.invoke({
        "type": "tool_call",
        "id": "call_1",
        "name": integrator.name,
        "args": {"question": "How would I schedule the first one to run nightly?"},
    })
    print(type(message).__name__, message.tool_call_id)
    print(message.content)
    print("Integrator Agent session:", integrator.session_id)

    if "--with-llm" in sys.argv:
        from langchain.agents import create_agent

        agent = create_agent("openai:gpt-4.1", tools=[integrator],
                             system_prompt="Delegate all data-integration work to the "
                                           "integrator_agent tool.")
        result = agent.invoke({"messages": [{"role": "user", "content":
                               "Copy the customers table from wh to a CSV file every night."}]})
        print(result["messages"][-1].content)


if __name__ == "__main__":
    main()
