"""A real multi-worker run (issue 19): 3 worker processes (each its own home, as on three
hosts) started at the same moment on one fresh PostgreSQL database, clients x turns spread
over them, a hot swap of the sentiment version seen by every worker, kill -9 of one worker
under load. The scenario is scripts/bench_workers.py's (which prints the numbers at full
scale); here it is small enough for 2 cores, and checked. Skipped without
SUPPORTBOT_TEST_POSTGRES_URL (scripts/pg_throwaway.sh; CI provides one)."""

from __future__ import annotations

import json
import os

import pytest

from scripts import bench_workers

POSTGRES_ENV = "SUPPORTBOT_TEST_POSTGRES_URL"


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_on_one_postgres(tmp_path):
    server = os.environ.get(POSTGRES_ENV)
    if not server:
        pytest.skip(f"set {POSTGRES_ENV} (e.g. from scripts/pg_throwaway.sh) to run on PostgreSQL")
    clients = int(os.environ.get("SUPPORTBOT_TEST_WORKERS_CLIENTS", "16"))
    turns = int(os.environ.get("SUPPORTBOT_TEST_WORKERS_TURNS", "10"))
    r = bench_workers.run(server, tmp_path, workers=3, clients=clients, turns=turns)
    print(bench_workers.table(r))
    print(json.dumps(r, default=str))

    # every turn answered: on a live worker, or sent again after the killed one dropped it
    assert r["acknowledged"] == clients * turns
    assert r["found"] == r["acknowledged"]  # every acknowledged turn (and its reply) is stored
    assert r["errors_on_live_workers"] == 0
    killed = r["kill"]["killed_worker"]
    assert r["per_worker"][killed]["acknowledged"] > 0  # it served load before it died
    assert r["kill"]["acknowledged_before_kill"] < r["acknowledged"]  # ... and the others went on after
    # the hot swap reached every worker
    assert set(r["swap"]["seconds_to_serve"]) == {0, 1, 2}
    assert r["swap"]["stored_path"] == "sentiment-b"  # relative to the shared models directory
    # one key over its limit is refused whichever worker it reaches, and the total holds
    rl = r["rate_limit"]
    assert rl["allowed"] <= rl["allowed_at_most"] < rl["sent"]
    assert all(w["429"] > 0 for w in rl["per_worker"].values())
