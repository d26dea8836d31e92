#!/usr/bin/env python3
"""Integrator Agent as an AutoGen (autogen-agentchat 0.4+) tool.

    pip install requests autogen-agentchat
    export ETLWORKS_URL="http://127.0.0.1:8080" ETLWORKS_API_KEY="your-api-key"
    python examples/autogen_example.py

Runs the tool the way an AutoGen ``AssistantAgent`` does (``FunctionTool.run_json`` with the
model's arguments), twice in one Integrator Agent session. With ``--with-llm`` (and ``pip install
"autogen-ext[openai]"``, ``OPENAI_API_KEY`` set) an AssistantAgent also delegates to it.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from autogen_core import CancellationToken  # noqa: E402

from autogen_tool import ask_etlworks_agent, make_etlworks_tool  # noqa: E402


async def main():
    tool = make_etlworks_tool()
    print(json.dumps(tool.schema["parameters"]))
    token = CancellationToken()
    first = await tool.run_json({"question": "Which connections can I create?"}, token)
    print(tool.return_value_as_string(first))
    second = await tool.run_json({"question": "Create the first one for api.example.com."}, token)
    print(tool.return_value_as_string(second))
    print("Integrator Agent session:", tool.subagent.session_id)

    if "--with-llm" in sys.argv:
        from autogen_agentchat.agents import AssistantAgent
        from autogen_ext.models.openai import OpenAIChatCompletionClient

        agent = AssistantAgent(
            "planner",
            model_client=OpenAIChatCompletionClient(model="gpt-4.1"),
            tools=[ask_etlworks_agent],
            system_message="Use ask_etlworks_agent for anything about connections, flows, "
                           "schedules or templates.")
        result = await agent.run(task="Is there a template for CSV files to PostgreSQL? "
                                      "Preview it.")
        print(result.messages[-1].content)


if __name__ == "__main__":
    asyncio.run(main())
