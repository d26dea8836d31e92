"""``/openapi.json`` is a valid OpenAPI document and true to the API.

Validity: openapi-spec-validator reads the document as OpenAPI 3.1 and finds nothing wrong.

Truth: schemathesis generates requests from the document (its examples, coverage and fuzzing
phases, a bounded number of cases per operation, a fixed seed so a CI run is reproducible) and
sends them to the real server, which must answer each as documented: no 5xx
(``not_a_server_error``), only documented status codes (``status_code_conformance``) with their
documented content types (``content_type_conformance``), headers (``response_headers_conformance``:
``WWW-Authenticate`` on 401, ``Retry-After`` on 429) and bodies (``response_schema_conformance``,
which also checks every event of an event stream against its schema).

The server is one of its own, with a scripted upstream of its own: the session's ``server`` and
``upstream`` fixtures are shared with the other tests, and the cases change state those depend
on (a global own OpenAI key, sessions, the upstream's record of requests). Every operation is
included: chat answers come from the scripted upstream within milliseconds, streams end after a
few events, and nothing the cases can do breaks a later case (see
``test_api_answers_as_documented``). schemathesis makes no cases for the document's own URL;
``test_openapi_document_is_valid`` reads it.

For a deeper run: ``CONFORMANCE_EXAMPLES=500 CONFORMANCE_SEED=$RANDOM pytest -q
clients/tests/test_openapi_conformance.py``.
"""

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
import schemathesis
from openapi_spec_validator import validate as validate_openapi
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from conftest import ScriptedUpstream, Server, server_binary

# Fuzzing cases per operation (the examples and coverage phases add their own, a few dozen at
# most): the whole file runs in well under a minute on 2 cores against a debug build.
MAX_EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "100"))
SEED = int(os.environ.get("CONFORMANCE_SEED", "20261204"))

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def conformance_server():
    binary = server_binary()
    if not binary.is_file():
        pytest.skip("server binary %s not found: run `cargo build -p server` at the repository "
                    "root, or set INTEGRATOR_BIN" % binary)
    # An upstream of its own too: the other tests look up what their messages sent upstream.
    upstream = ScriptedUpstream()
    tmp = tempfile.mkdtemp(prefix="integrator-conformance-")
    try:
        running = Server(binary, upstream, Path(tmp) / "data")
        yield running
        running.stop()
    finally:
        upstream.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def auth(conformance_server):
    return {"Authorization": "Bearer " + conformance_server.admin_key}


@pytest.fixture(scope="module")
def api_schema(conformance_server):
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            # No example database: nothing is written under the working directory, and a run
            # depends only on the seed.
            "database": "none",
        },
        "request-timeout": 60,
    })
    return schemathesis.openapi.from_url(conformance_server.url + "/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")

# Half of the cases of an operation on `/sessions/{session_id}…` go to a real session, so that
# its successful answers are checked too (generated ids name no session: always 404).
_real_session_turn = itertools.cycle([True, False])


def test_openapi_document_is_valid(conformance_server):
    response = requests.get(conformance_server.url + "/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    validate_openapi(document)


@schema.parametrize()
def test_api_answers_as_documented(case, conformance_server, auth):
    # Nothing here breaks a later case, so no operation is excluded or ordered:
    # - POST /api-key sets a global own key (the admin is a super_admin); own keys go to the
    #   same scripted upstream, so chat keeps answering; POST /api-key/delete removes it.
    # - DELETE /sessions/{id} and /stop get a session created for that one case, or a
    #   generated id (404).
    # - Tool execution with generated names answers `tool_not_found`; the documented example
    #   (search_knowledge_base) only reads the knowledge base.
    # - Chat messages go to the scripted upstream; one that happened to contain its `[slow]`
    #   or `[fail]` marker would only answer slower, or end in a documented `error`.
    # - Cases sent without a key (the coverage phase checks that 401 is documented) are not
    #   failed key attempts, so this address is not throttled (a 429 would still conform).
    if "session_id" in (case.path_parameters or {}) and next(_real_session_turn):
        created = requests.post(conformance_server.url + "/rest/v1/ai-agent/api/sessions",
                                headers=auth, timeout=30)
        assert created.status_code == 200, created.text
        case.path_parameters["session_id"] = created.json()["session_id"]
    case.call_and_validate(headers=auth, checks=CHECKS)
