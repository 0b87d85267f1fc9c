"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document
(schemathesis, in-process against the ASGI app with the fake runtime).

Every operation gets schema-valid ("positive") and schema-violating ("negative")
requests; each response must be no 5xx, a documented status code with a documented
content type, and a body matching the documented schema; invalid requests must be
refused. One check is left out: `positive_data_acceptance`, because the API refuses
some schema-valid requests on purpose (whitespace-only text and control characters
422, too long 413, unknown ids 404), which JSON Schema cannot express.

SUPPORTBOT_TEST_FUZZ_EXAMPLES (default 120) sets the cases per operation and mode:
about 2,200 cases in all by default.
"""

from __future__ import annotations

import collections
import os
import re

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from bot.api.app import create_app  # noqa: E402
from fixtures.dialogue import make_runtime  # noqa: E402

EXAMPLES = int(os.environ.get("SUPPORTBOT_TEST_FUZZ_EXAMPLES", "120"))


def _run(op, mode, counts, failures, **strategy_kwargs):
    @given(case=op.as_strategy(generation_mode=mode, **strategy_kwargs))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate], database=None, derandomize=False)
    def one(case):
        counts[op.label] += 1
        try:
            case.call_and_validate(excluded_checks=[positive_data_acceptance])
        except AssertionError as exc:  # schemathesis' FailureGroup: collect, keep going
            checks = tuple(re.findall(r"- (ST\d+ [^\n]*)", str(exc))) or (str(exc)[:200],)
            failures.setdefault((op.label, mode.value, checks), case.as_curl_command())

    try:
        one()
    except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
        pass


@pytest.mark.slow
def test_openapi_fuzz_finds_no_server_error_and_no_schema_violation(tmp_path):
    runtime = make_runtime(tmp_path, rate_limit_per_minute=0)
    app = create_app(runtime, ui=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    counts: collections.Counter = collections.Counter()
    failures: dict = {}
    # real ids too, so the operations on a conversation get past the 404
    cid = runtime.dialogue.create_conversation(channel="fuzz")
    runtime.dialogue.turn(cid, "How long does shipping take?")
    operations = [result.ok() for result in schema.get_all_operations()]
    for op in operations:
        for mode in GenerationMode:
            _run(op, mode, counts, failures)
    for op in operations:
        if "{conversation_id}" in op.path and op.method.upper() != "DELETE":
            _run(op, GenerationMode.POSITIVE, counts, failures, path_parameters={"conversation_id": cid})
    total = sum(counts.values())
    print(f"\nschemathesis: {total} cases over {len(counts)} operations")
    runtime.close()
    assert total >= 15 * EXAMPLES
    assert not failures, "\n".join(f"{k}: {v}" for k, v in failures.items())
