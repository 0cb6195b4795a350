"""The full kill -9 crash run (issue 17): 50 SIGKILLs of the real server at random moments
of signing, sealing, webhook ingestion and outbox delivery, each followed by a restart and
the checks of tests/crash/driver.py. The test run does the same with 10 kills.

    .venv/bin/python bench/bench_crash_kill9.py [--kills 50] [--seed 17]
    WANGQIAN_TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/bench_crash_kill9.py        # on PostgreSQL
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.crash.driver import run
from tests.running_server import own_database


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--max-delay", type=float, default=2.0)
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, own_database() as database_url:
        figures = run(
            Path(tmp), database_url, kills=args.kills, seed=args.seed, max_delay=args.max_delay
        )
    print(
        f"{figures.kills} kills, {figures.contracts} contracts finished, acknowledged "
        f"{figures.acknowledged}; restart {max(figures.restart_seconds):.1f} s at most; "
        f"{time.monotonic() - started:.0f} s in all; every check held"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
