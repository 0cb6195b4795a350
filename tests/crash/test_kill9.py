"""kill -9 at random moments of signing, sealing, webhook ingestion and outbox delivery,
on the suite's database (SQLite, or a PostgreSQL database of its own). The short run
(``WANGQIAN_CRASH_KILLS``, default 10) is part of the test run; bench/bench_crash_kill9.py
runs 50."""

from __future__ import annotations

import os

import pytest

from tests.crash.driver import run
from tests.running_server import own_database

KILLS = int(os.environ.get("WANGQIAN_CRASH_KILLS", "10"))
SEED = int(os.environ.get("WANGQIAN_CRASH_SEED", "17"))


def test_nothing_acknowledged_is_lost_or_doubled_across_kill_9(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with own_database() as database_url:
        figures = run(
            tmp_path_factory.mktemp("crash"), database_url, kills=KILLS, seed=SEED, max_delay=2.0
        )
    print(
        f"kill -9: {figures.kills} kills, {figures.contracts} contracts finished, "
        f"acknowledged {figures.acknowledged}, restart "
        f"{max(figures.restart_seconds, default=0):.1f} s at most"
    )
    assert figures.kills == KILLS
    assert figures.contracts >= 2  # the kills fall on more than one contract
