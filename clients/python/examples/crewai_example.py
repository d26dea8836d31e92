#!/usr/bin/env python3
"""Integrator Agent as a CrewAI tool.

    pip install requests crewai
    export ETLWORKS_URL="http://127.0.0.1:8080" ETLWORKS_API_KEY="your-api-key"
    python examples/crewai_example.py

Calls the tool the way a CrewAI agent does (``run`` with the tool's arguments, and the
structured tool CrewAI builds from it with the model's JSON arguments), in one Integrator Agent
session. With ``--with-llm`` (``OPENAI_API_KEY`` set) it also runs a one-agent crew that
delegates to it.
"""

import os
import sys

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from crewai_tool import EtlworksAgentTool  # noqa: E402


def main():
    tool = EtlworksAgentTool()

    print(tool.run(question="Is there a template for CSV files to PostgreSQL?"))

    # CrewAI agents call tools through the structured tool, with the model's JSON arguments.
    structured = tool.to_structured_tool()
    print(structured.invoke('{"question": "How do I preview it before importing?"}'))
    print("Integrator Agent session:", tool.session_id)

    if "--with-llm" in sys.argv:
        from crewai import Agent, Crew, Task

        engineer = Agent(
            role="Data integration engineer",
            goal="Build and operate reliable data pipelines",
            backstory="You delegate pipeline work to the Integrator Agent specialist.",
            tools=[tool],
        )
        task = Task(
            description="Set up a daily sync from https://api.example.com/v1/orders into the "
                        "PostgreSQL connection wh, upserting on id.",
            expected_output="The commands that were run and the result of a first test run.",
            agent=engineer,
        )
        print(Crew(agents=[engineer], tasks=[task]).kickoff())


if __name__ == "__main__":
    main()
