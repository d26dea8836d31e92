"""etlworks-agent.ps1 without PowerShell: PowerShell (pwsh) cannot be installed on this machine
(no Debian package; the npm `pwsh` package downloads it from GitHub at install time), so the
script is checked statically here. Where pwsh exists, test_cli.py and test_seeds.py also run it
for real.

* It parses: the tree-sitter PowerShell grammar finds no syntax error.
* Windows PowerShell 5.1 reads a script without a BOM as ANSI: the file must be pure ASCII.
* It offers the Python client's commands, calls the same endpoints and parses SSE the same way.
"""

import re

import pytest

from conftest import PS_SCRIPT, PY_SCRIPT

SOURCE = PS_SCRIPT.read_text(encoding="utf-8") if PS_SCRIPT.exists() else ""


def _parse():
    ts = pytest.importorskip("tree_sitter", reason="pip install tree-sitter")
    grammar = pytest.importorskip("tree_sitter_powershell",
                                  reason="pip install tree-sitter-powershell")
    parser = ts.Parser(ts.Language(grammar.language()))
    data = PS_SCRIPT.read_bytes()
    return parser, parser.parse(data), data


def _errors(tree, data):
    found = []

    def walk(node):
        if node.type == "ERROR" or node.is_missing:
            line = node.start_point[0] + 1
            found.append("line %d: %r" % (line, data[node.start_byte:node.end_byte][:80]))
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return found


def test_the_script_parses():
    parser, tree, data = _parse()
    assert not tree.root_node.has_error, _errors(tree, data)
    # The grammar does catch errors (so a pass means something).
    broken = parser.parse(data.replace(b"function Invoke-Stream([string]$Path, [string]$Body) {",
                                       b"function Invoke-Stream([string]$Path, [string]$Body) {{"))
    assert broken.root_node.has_error


def test_ascii_only_for_windows_powershell():
    data = PS_SCRIPT.read_bytes()
    bad = [(i, b) for i, b in enumerate(data) if b > 127]
    assert not bad, "non-ASCII bytes at %r" % bad[:5]


def test_same_commands_as_the_python_client():
    python = PY_SCRIPT.read_text(encoding="utf-8")
    python_commands = set(re.findall(r'\badd\("([a-z-]+)"', python))
    known = re.search(r"\$known = @\(([^)]*)\)", SOURCE, re.S).group(1)
    ps_commands = set(re.findall(r"'([a-z-]+)'", known))
    assert ps_commands == python_commands
    # Each has a branch in the dispatch switch.
    for command in ps_commands:
        assert re.search(r"^\s*'%s' \{" % re.escape(command), SOURCE, re.M), command


def test_same_endpoints_as_the_python_client():
    for path in ("'/rest/v1/ai-agent/api'", "'/rest/v1/ai-agent/api-key'", "'/tools'",
                 "'/execute'", "'/chat'", "'/chat/stream'", "'/sessions'", "'/messages'",
                 "'/stop'", "'/usage'", "'/delete'"):
        assert path in SOURCE, path
    assert "Invoke-Api 'DELETE' ('/sessions/' + (Format-Id $rest[0]))" in SOURCE
    assert "[Uri]::EscapeDataString" in SOURCE
    assert "AuthenticationHeaderValue('Bearer'" in SOURCE


def test_streaming_reads_line_by_line_as_the_python_parser_does():
    # Headers first, then the body as a stream, read line by line.
    assert "[System.Net.Http.HttpCompletionOption]::ResponseHeadersRead" in SOURCE
    assert "ReadAsStreamAsync()" in SOURCE and "$reader.ReadLine()" in SOURCE
    # Blank line dispatches; ':' comments skipped; data lines joined with newlines; one space
    # after the colon dropped; tokens written and flushed at once.
    assert "if ($line.Length -eq 0)" in SOURCE
    assert "$line.StartsWith(':', [System.StringComparison]::Ordinal)" in SOURCE
    assert '[string]::Join("`n", $dataLines.ToArray())' in SOURCE
    assert "$value.StartsWith(' ', [System.StringComparison]::Ordinal)" in SOURCE
    assert "[Console]::Out.Write($content)" in SOURCE and "[Console]::Out.Flush()" in SOURCE
    # error events stop with the code and retryable mark, like the Python and bash clients.
    assert "' (retryable)'" in SOURCE
    assert '"the event stream ended before its end event (retryable)$(Get-RejoinHint $state)"' \
        in SOURCE


def test_errors_are_one_line_and_exit_non_zero():
    assert '[Console]::Error.WriteLine("${script:Prog}: error: $Message")' in SOURCE
    assert re.search(r"function Stop-WithError.*?exit 1", SOURCE, re.S)
    # Application-level {"success": false} answers fail too.
    assert "if (Test-Failed $data) { Stop-WithError" in SOURCE


def test_works_in_windows_powershell_5_1():
    # Constructs that need PowerShell 7 would break 5.1.
    for construct in ("??", "?.", " -Parallel", "-AsHashtable", "&&", "||", "$PSStyle",
                      "[ordered]@{} |", "class "):
        assert construct not in SOURCE, construct
    # -NoEnumerate (PowerShell 6+) only behind a version check.
    assert "if ($PSVersionTable.PSVersion.Major -ge 6) {" in SOURCE
    assert "Add-Type -AssemblyName System.Net.Http" in SOURCE


def test_resume_and_on_disconnect_as_the_other_clients():
    # resume ID [-After EVENT_ID]: GET /sessions/{id}/stream?after=..., printed like a stream.
    assert "'/stream'" in SOURCE and "[string]$After" in SOURCE
    assert "$path += '?after=' + [Uri]::EscapeDataString($After)" in SOURCE
    assert "if ([string]::IsNullOrEmpty($Body)) { $method = 'GET' }" in SOURCE
    assert "Invoke-Stream $path $null" in SOURCE
    assert "Stop-WithUsage '-After is an option of resume'" in SOURCE
    # -OnDisconnect cancel|continue goes into the chat body as on_disconnect.
    assert "[string]$OnDisconnect" in SOURCE
    assert "$body['on_disconnect'] = $OnDisconnect" in SOURCE
    assert "@('cancel', 'continue') -cnotcontains $OnDisconnect" in SOURCE
    # The "id:" line after each "data:" line is read (never printed), and a broken stream
    # names the rejoin: "; rejoin it with: etlworks-agent.ps1 resume ID -After EVENT_ID".
    assert "elseif ($field -eq 'id' -and $value.IndexOf([char]0) -lt 0)" in SOURCE
    assert '"; rejoin it with: $script:Prog resume $($State.Session) -After $($State.LastId)"' \
        in SOURCE
    assert "(retryable)$(Get-RejoinHint $state)" in SOURCE
