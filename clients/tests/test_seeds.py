"""The seeds' client examples, run verbatim: only the server URL and the API key differ.

The snippets below are copies of the quick start's "Step 8: Use the client scripts" and the
overview's examples. When the seeds are beside the repository (``../shared/seeds``), each copy
is checked to still be in them word for word.
"""

import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import PS_SCRIPT, PY_SCRIPT, REPO, SH_SCRIPT

SEEDS = REPO.parent / "shared" / "seeds"

QUICKSTART_PYTHON = '''# Set environment variables
export ETLWORKS_URL="https://your-instance.etlworks.com"
export ETLWORKS_API_KEY="your-api-key"
# Use as CLI
python etlworks_agent.py tools
python etlworks_agent.py chat "How do I create a connection?"
python etlworks_agent.py chat-stream "How do I schedule a flow?"
# Use as a library in your Python code
python -c "
from etlworks_agent import EtlworksAgent
agent = EtlworksAgent()
result = agent.chat('What CLI commands are available?')
print(result['response'])
"
'''

QUICKSTART_BASH = '''# Make executable
chmod +x etlworks-agent.sh
# Set environment variables
export ETLWORKS_URL="https://your-instance.etlworks.com"
export ETLWORKS_API_KEY="your-api-key"
# Use
./etlworks-agent.sh tools
./etlworks-agent.sh chat "How do I create a connection?"
./etlworks-agent.sh chat-stream "How do I schedule a flow?"
./etlworks-agent.sh tool search_knowledge_base '{"query": "REST connection"}'
'''

OVERVIEW_PYTHON = '''from etlworks_agent import EtlworksAgent
agent = EtlworksAgent("https://app.etlworks.com", api_key="YOUR_API_KEY")
# One-shot chat
result = agent.chat("How do I create a REST API connection?")
print(result["response"])
# Execute a tool directly
kb = agent.execute_tool("search_knowledge_base", {"query": "schedule a flow"})
print(kb["result"])
# Multi-turn session
session = agent.create_session()
r1 = agent.session_chat(session, "Create a connection to api.example.com")
r2 = agent.session_chat(session, "Now schedule it to run every hour")
'''

OVERVIEW_BASH = '''export ETLWORKS_URL="https://app.etlworks.com"
export ETLWORKS_API_KEY="YOUR_API_KEY"
# One-shot chat
./etlworks-agent.sh chat "How do I create a REST API connection?"
# Execute a tool
./etlworks-agent.sh tool search_knowledge_base '{"query": "schedule a flow"}'
# Multi-turn session
SESSION=$(./etlworks-agent.sh session-create)
./etlworks-agent.sh session-chat $SESSION "Create a connection to api.example.com"
./etlworks-agent.sh session-chat $SESSION "Now schedule it to run every hour"
'''

QUICKSTART_POWERSHELL = '''# Set environment variables
$env:ETLWORKS_URL = "https://your-instance.etlworks.com"
$env:ETLWORKS_API_KEY = "your-api-key"
# Use
.\\etlworks-agent.ps1 tools
.\\etlworks-agent.ps1 chat "How do I create a connection?"
.\\etlworks-agent.ps1 chat-stream "How do I schedule a flow?"
.\\etlworks-agent.ps1 tool search_knowledge_base '{"query": "REST connection"}'
# Multi-turn session
$session = .\\etlworks-agent.ps1 session-create
.\\etlworks-agent.ps1 session-chat $session "Create a REST connection"
.\\etlworks-agent.ps1 session-chat $session "Now schedule it hourly"
'''

OVERVIEW_POWERSHELL = '''$env:ETLWORKS_URL = "https://app.etlworks.com"
$env:ETLWORKS_API_KEY = "YOUR_API_KEY"
# One-shot chat
.\\etlworks-agent.ps1 chat "How do I create a REST API connection?"
# Execute a tool
.\\etlworks-agent.ps1 tool search_knowledge_base '{"query": "schedule a flow"}'
# Multi-turn session
$session = .\\etlworks-agent.ps1 session-create
.\\etlworks-agent.ps1 session-chat $session "Create a connection to api.example.com"
.\\etlworks-agent.ps1 session-chat $session "Now schedule it to run every hour"
'''

SNIPPETS = {
    "quickstart_python": QUICKSTART_PYTHON,
    "quickstart_bash": QUICKSTART_BASH,
    "overview_python": OVERVIEW_PYTHON,
    "overview_bash": OVERVIEW_BASH,
    "quickstart_powershell": QUICKSTART_POWERSHELL,
    "overview_powershell": OVERVIEW_POWERSHELL,
}


def _code_lines(text):
    """The snippet's lines that are code (the seeds lost their comment lines in places)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith("# ")]


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_the_snippets_are_still_the_seeds(name):
    if not SEEDS.is_dir():
        pytest.skip("the seeds are not beside the repository (%s)" % SEEDS)
    seeds = "\n".join(p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt")))
    seed_lines = [line.strip() for line in seeds.splitlines()]
    lines = _code_lines(SNIPPETS[name])
    # The lines appear in the seeds in this order, one after another (comments aside).
    starts = [i for i, line in enumerate(seed_lines) if line == lines[0].strip()]
    assert starts, "%s: first line not in the seeds: %r" % (name, lines[0])
    for start in starts:
        found, i = True, start
        for line in lines:
            while i < len(seed_lines) and (not seed_lines[i] or seed_lines[i].startswith("# ")):
                i += 1
            if i >= len(seed_lines) or seed_lines[i] != line.strip():
                found = False
                break
            i += 1
        if found:
            return
    pytest.fail("%s is no longer a verbatim copy of the seeds" % name)


def _with_server(text, server):
    return (text.replace("https://your-instance.etlworks.com", server.url)
            .replace("https://app.etlworks.com", server.url)
            .replace("your-api-key", server.admin_key)
            .replace("YOUR_API_KEY", server.admin_key))


@pytest.fixture
def workdir(tmp_path):
    """A folder with the downloaded scripts, and `python` on PATH (this interpreter)."""
    for script in (PY_SCRIPT, SH_SCRIPT, PS_SCRIPT):
        shutil.copy(script, tmp_path / script.name)
    os.chmod(tmp_path / SH_SCRIPT.name, stat.S_IRUSR | stat.S_IWUSR)  # the seed runs chmod +x
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETLWORKS_")}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    env["PYTHONIOENCODING"] = "utf-8"
    return tmp_path, env


def _run_bash(script, cwd, env):
    for tool in ("curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    return subprocess.run(["bash", "-e", "-c", script], cwd=str(cwd), env=env,
                          capture_output=True, text=True, timeout=120, encoding="utf-8")


def test_quickstart_python(server, workdir):
    cwd, env = workdir
    result = _run_bash(_with_server(QUICKSTART_PYTHON, server), cwd, env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "search_knowledge_base" in out
    assert "Echo: How do I create a connection? (1 messages)" in out
    assert "Echo: How do I schedule a flow? (1 messages)" in out
    assert out.rstrip().endswith("Echo: What CLI commands are available? (1 messages)")


def test_quickstart_bash(server, workdir):
    cwd, env = workdir
    result = _run_bash(_with_server(QUICKSTART_BASH, server), cwd, env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("search_knowledge_base")
    assert "Echo: How do I create a connection? (1 messages)" in out
    assert "Echo: How do I schedule a flow? (1 messages)" in out
    assert "Based on the knowledge base" in out


def test_overview_python(server, workdir):
    cwd, env = workdir
    code = _with_server(OVERVIEW_PYTHON, server) + (
        "assert r2['response'].endswith('(3 messages)'), r2\n"
        "print('SESSION-OK', session)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=str(cwd), env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Echo: How do I create a REST API connection? (1 messages)" in result.stdout
    assert "Based on the knowledge base" in result.stdout
    assert "SESSION-OK" in result.stdout


def test_overview_bash(server, workdir):
    cwd, env = workdir
    os.chmod(cwd / SH_SCRIPT.name, 0o755)
    result = _run_bash(_with_server(OVERVIEW_BASH, server), cwd, env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout
    assert "Echo: How do I create a REST API connection? (1 messages)" in lines
    assert "Echo: Create a connection to api.example.com (1 messages)" in lines
    assert "Echo: Now schedule it to run every hour (3 messages)" in lines


@pytest.mark.parametrize("name", ["quickstart_powershell", "overview_powershell"])
def test_powershell_snippets(server, workdir, name):
    pwsh = shutil.which("pwsh") or shutil.which("powershell")
    if pwsh is None:
        pytest.skip("PowerShell (pwsh) is not installed here; see test_powershell.py for the "
                    "static checks of etlworks-agent.ps1")
    cwd, env = workdir
    script = _with_server(SNIPPETS[name], server)
    script = "$ErrorActionPreference = 'Stop'\n" + script.replace(
        "\n.\\", "\nif ($LASTEXITCODE) { exit $LASTEXITCODE }\n.\\")
    result = subprocess.run([pwsh, "-NoProfile", "-NonInteractive", "-Command", script],
                            cwd=str(cwd), env=env, capture_output=True, text=True, timeout=120,
                            encoding="utf-8")
    assert result.returncode == 0, result.stderr
    assert "(1 messages)" in result.stdout
    if "session-chat $session" in script:
        assert "(3 messages)" in result.stdout
