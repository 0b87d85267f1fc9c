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

from app.server import create_app  # noqa: E402
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


# ---- the Unicode classes and shapes the schema-driven fuzz does not reach -----------------

_ODD = ("\ud800\udbff\udc00\udfff"  # lone surrogates (escaped in JSON, invalid as text)
        "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"  # bidi
        "\u200b\u200c\u200d\u2060\ufeff\u00ad"  # zero-width, BOM, soft hyphen
        "\uff10\uff11\uff19\uff21\uff41\uff20\uff0e\uff0b\uff0d\u3000"  # full-width digits, letters, ＠．＋－
        "\x00\x07\x1b\x7f\u0085\u2028\u2029\ufdfd\U0001f600")


@pytest.mark.slow
def test_odd_unicode_and_nested_or_huge_metadata_never_make_a_5xx(tmp_path):
    from fastapi.testclient import TestClient
    from hypothesis import strategies as st

    runtime = make_runtime(tmp_path, rate_limit_per_minute=0)
    client = TestClient(create_app(runtime, ui=False), raise_server_exceptions=False)
    cid = runtime.dialogue.create_conversation(channel="fuzz")
    reply = runtime.dialogue.turn(cid, "How long does shipping take?").reply.message_id
    text = st.text(alphabet=st.sampled_from(_ODD) | st.characters(codec="utf-8"), min_size=0, max_size=40)
    json_value = st.recursive(st.none() | st.booleans() | st.integers() | text,
                              lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                              max_leaves=30)
    seen = collections.Counter()

    def post(path: str, body) -> None:
        raw = __import__("json").dumps(body).encode()  # ensure_ascii: lone surrogates travel as \ud800
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        seen[r.status_code // 100] += 1
        assert r.status_code < 500, (path, body, r.status_code, r.text)
        assert r.headers["content-type"].startswith(("application/json", "text/event-stream")), r.headers

    @given(t=text, meta=json_value)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def one(t, meta):
        post("/v1/sentiment", {"texts": [t or "x", "ok " + t]})
        post("/v1/conversations", {"customer_ref": t or None, "channel": t[:60] or None,
                                   "metadata": meta if isinstance(meta, dict) else {"v": meta}})
        post(f"/v1/conversations/{cid}/messages", {"text": t})
        post(f"/v1/conversations/{cid}/agent-messages", {"text": "ok " + t, "agent": t or "a"})
        post("/v1/feedback", {"message_id": reply, "rating": "down", "comment": t or None})
        post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi " + t}]})
        post("/v1/chat/completions", {"model": runtime.generator.name, "messages": [{"role": "user", "content": t}]})

    one()
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["k"] = {}
        node = node["k"]
    for metadata in (deep, {"k": "x" * 2_000_000}, {f"k{i}": i for i in range(5000)}, {"k": ["x"] * 5000}):
        post("/v1/conversations", {"metadata": metadata})
    assert client.get("/v1/conversations").status_code == 200
    runtime.close()
    assert seen[4] > 0 and seen[2] > 0  # both refusals and acceptances happened
