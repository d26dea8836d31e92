"""The docs can't drift: every curl example in docs/ that talks to the server runs against a
real server (one of this module's own, with the scripted upstream), and where the page shows
the answer as JSON right after the example, the real answer has that shape: every field the
page shows exists, with the same JSON type (objects compared field by field, lists by their
first item). A page that shows a field the server doesn't send, or an example that no longer
runs, fails here.

The examples of a page run in order in one bash process, so the variables one sets
(``SESSION_ID=$(curl …)``) reach the next. Examples that can't run here are listed in ``SKIPPED``
with the reason; an example with a placeholder a reader must fill in (``<id>``, ``YOUR_…``)
is not run.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, ScriptedUpstream, Server, server_binary

DOCS = REPO / "docs"

# (page, a piece of the example's text) → why it can't run against a test server.
SKIPPED = {
    ("troubleshooting-401.md", "Bearer $WRONG"): "needs a revoked key",
}

# Objects whose keys are data (a model's or a tool's name), not fields.
KEYED_BY_DATA = {"by_model", "by_tool"}

PLACEHOLDER = re.compile(r"<[A-Za-z_ -]+>|YOUR_|\.\.\.|…|\$\{?[A-Z_]*(?:TOKEN|PASSWORD|SECRET)")
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
MARKER = "@@@DOC-EXAMPLE"


def _examples(page):
    """(example, the JSON answer shown right after it, or None) for each runnable example."""
    text = page.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    found = []
    for i, block in enumerate(blocks):
        language, body = block.group(1), block.group(2)
        if language not in ("bash", "sh", "") or "curl" not in body or "$ETLWORKS_URL" not in body:
            continue
        if PLACEHOLDER.search(body) or any(page.name == p and piece in body
                                           for (p, piece) in SKIPPED):
            continue
        shown = None
        following = blocks[i + 1] if i + 1 < len(blocks) else None
        between = text[block.end():following.start()] if following else ""
        # The answer is shown right after (at most a short sentence between them).
        if following and following.group(1) == "json" and len(between.strip()) < 200:
            shown = following.group(2)
        found.append((body, shown))
    return found


def _pages():
    return sorted(p for p in DOCS.glob("*.md") if _examples(p))


def _json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _shape_problems(shown, real, where="answer"):
    """How the real answer differs from the shape the page shows (empty: it has that shape)."""
    if shown is None:
        return []  # the page shows null: any value (an optional field)
    if _json_type(shown) != _json_type(real):
        return ["%s: the page shows a %s, the server sent %s" % (
            where, _json_type(shown), json.dumps(real)[:200])]
    problems = []
    if isinstance(shown, dict) and where.rsplit(".", 1)[-1] in KEYED_BY_DATA:
        # Keys that are data (model and tool names): each shown entry has the shape of the
        # server's entries.
        if real:
            sample = next(iter(real.values()))
            for key, value in shown.items():
                problems.extend(_shape_problems(value, sample, "%s[%s]" % (where, key)))
    elif isinstance(shown, dict):
        for key, value in shown.items():
            if key not in real:
                problems.append("%s.%s: shown on the page, not sent by the server" % (where, key))
            else:
                problems.extend(_shape_problems(value, real[key], "%s.%s" % (where, key)))
    elif isinstance(shown, list) and shown and real:
        problems.extend(_shape_problems(shown[0], real[0], where + "[0]"))
    return problems


def _compares_whole_answer(example):
    """Whether the example prints the server's whole JSON answer (not a `jq -r` extract)."""
    last = example.strip().splitlines()[-1]
    if "| jq" not in example:
        return True
    return bool(re.search(r"\|\s*jq\s+\.\s*$", last))


@pytest.fixture(scope="module")
def docs_server():
    binary = server_binary()
    if not binary.is_file():
        pytest.skip("server binary %s not found: run `cargo build -p server`" % binary)
    if not shutil.which("jq"):
        pytest.skip("jq is not installed")
    upstream = ScriptedUpstream()
    tmp = tempfile.mkdtemp(prefix="integrator-docs-")
    try:
        # As a newcomer's server answers: no LLM key, the builtin responder (the scripted
        # upstream stays unused).
        running = Server(binary, upstream, Path(tmp) / "data", settings={"OPENAI_API_KEY": ""})
        yield running
        running.stop()
    finally:
        upstream.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _run_page(server, examples, workdir):
    script = ["set +e"]
    for number, (example, _) in enumerate(examples):
        script.append(example)
        script.append('echo; echo "%s %d rc=$?"' % (MARKER, number))
    env = dict(os.environ, ETLWORKS_URL=server.url, ETLWORKS_API_KEY=server.admin_key)
    result = subprocess.run(["bash", "-c", "\n".join(script)], env=env, cwd=workdir,
                            capture_output=True, text=True, timeout=240, encoding="utf-8")
    outputs = re.split(r"^%s \d+ rc=\d+$" % MARKER, result.stdout, flags=re.M)
    codes = [int(c) for c in re.findall(r"^%s \d+ rc=(\d+)$" % MARKER, result.stdout, re.M)]
    return outputs, codes, result.stderr


def test_the_pages_have_examples_to_run():
    assert len(_pages()) >= 20, [p.name for p in _pages()]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_a_pages_examples_run_and_answer_as_shown(page, docs_server, tmp_path):
    examples = _examples(page)
    outputs, codes, stderr = _run_page(docs_server, examples, tmp_path)
    assert len(codes) == len(examples), "the examples stopped part way: %s" % stderr[-2000:]
    problems = []
    for number, ((example, shown), output, code) in enumerate(zip(examples, outputs, codes)):
        first_line = example.strip().splitlines()[0]
        if code != 0:
            problems.append("example %d (%s) exited %d: %s" % (number, first_line, code,
                                                               stderr[-500:]))
            continue
        if shown is None or not _compares_whole_answer(example):
            continue
        if not output.strip():
            problems.append("example %d (%s) printed nothing; the page shows an answer" % (
                number, first_line))
            continue
        try:
            shown_value = json.loads(shown)
        except ValueError:
            continue  # the page abbreviates the answer (not JSON as shown)
        try:
            real = json.loads(output)
        except ValueError:
            problems.append("example %d (%s): the page shows JSON, the server sent %r" % (
                number, first_line, output[:300]))
            continue
        problems.extend("example %d (%s): %s" % (number, first_line, p)
                        for p in _shape_problems(shown_value, real))
    assert not problems, "%s:\n  %s" % (page.name, "\n  ".join(problems))
