"""HTTP throughput measured from outside with ``wrk`` (a C load generator, faster than the
server), against a bare Litestar endpoint on the same granian settings in the same run.

Starts, on free 127.0.0.1 ports:

- ``bench/bare_app.py``: a one-line Litestar JSON endpoint (the baseline);
- ``wangqian demo`` (SQLite or ``--database-url``, mocks on, one granian worker unless
  ``--workers``) on a fresh data directory holding the demo world plus a 256-unit building,
  and one contract sealed through the HTTP flow (for public verify).

Each round measures the baseline first, then every endpoint; the figures printed are the
medians over rounds of req/s, p50 and p99 (wrk's own latency distribution), and each
endpoint's ratio to the baseline's median. A Python client drives the whole contract flows
(a scripted sequence wrk cannot follow); its own ceiling, measured against the same bare
endpoint, is printed beside them.

Usage: ``python bench/bench_http.py [--seconds 8] [--rounds 3] [--connections 32]``.
``python3 scripts/dev.py bench`` installs wrk (Debian) and py-spy first.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from bench_contracts import _arrange, _flow, _flows
from bench_public import _big_building, _drive, _free_port

WRK = shutil.which("wrk") or "wrk"
GZIP = "Accept-Encoding: gzip"
WRK_THREADS = 2
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    not_ok: int  # non-2xx/3xx answers, socket errors and timeouts


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int = WRK_THREADS,
    script: Path | None = None,
    header: str | None = None,
) -> Load:
    """One wrk run; its ``--latency`` distribution gives p50 and p99."""
    out = subprocess.run(
        [
            WRK,
            *(["-s", str(script)] if script else []),
            *(["-H", header] if header else []),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Requests/sec" not in out or "Latency Distribution" not in out:
        raise SystemExit(f"wrk said:\n{out}")
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if set(percentiles) != {"50", "99"}:
        raise SystemExit(f"wrk said:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    not_ok = int(non_2xx.group(1)) if non_2xx else 0
    if errors:
        not_ok += sum(int(n) for n in errors.groups())
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=requests,
        not_ok=not_ok,
    )


async def _payment_notice(data_dir: Path) -> tuple[str, str]:
    """A payment notice on the demo project's supervised account, with more due than any
    run pays (each webhook pays 1 yuan): its reference and the account's number."""
    import uuid as uuid_

    from sqlalchemy import select

    from api.core.clock import SystemClock
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.escrow.models import SupervisedAccount
    from api.escrow.notices import NoticePayee, create_payment_notices
    from api.register.models import Project
    from api.settings import Settings

    settings = Settings(data_dir=data_dir)
    database = create_database(settings)
    try:
        async with database.writer() as session, session.begin():
            project = await session.scalar(select(Project).where(Project.name == "明湖花园"))
            assert project is not None
            account = await session.scalar(
                select(SupervisedAccount).where(SupervisedAccount.project_id == project.id)
            )
            assert account is not None
            notices = await create_payment_notices(
                session,
                ServiceKeys.from_master(settings.master_secret()),
                contract_id=uuid_.uuid4(),
                contract_number="YS2026BENCH01",
                project_id=project.id,
                company_id=project.company_id,
                buyers=[NoticePayee(phone="13900000001", name="张三")],
                deposit_fen=0,
                down_payment_fen=10**13,
                estate="明湖花园",
                building="1栋",
                room="301",
                now=SystemClock().now(),
            )
            return notices[0].reference, account.account_number
    finally:
        await database.dispose()


def _webhook_script(
    path: Path, secret: str, reference: str, account: str, count: int, prefix: str
) -> Path:
    """A wrk script sending ``count`` signed payment.received webhooks, each a new bank
    transaction; wrk's threads take turns through the list, so none is sent twice (a
    thread that runs out starts again: those answers are replays, counted apart)."""
    import json as json_

    from api.escrow import signature

    now = int(time.time())
    bodies, headers = [], []
    for n in range(count):
        body = json_.dumps(
            {
                "id": f"evt_{prefix}{n}",
                "type": "payment.received",
                "created": now,
                "data": {
                    "transaction_id": f"{prefix}{n}",
                    "account_number": account,
                    "amount_fen": 100,
                    "reference": reference,
                },
            }
        )
        bodies.append(body)
        headers.append(signature.sign_header(secret, now, body.encode()))
    lua = ["local bodies = {", *(f"  {json_.dumps(b)}," for b in bodies), "}"]
    lua += ["local signatures = {", *(f'  "{h}",' for h in headers), "}"]
    lua.append(
        """
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  step = THREADS
  i = id - step
end
function request()
  i = i + step
  if i > #bodies then i = id end
  return wrk.format("POST", "/api/v1/webhooks/bank",
    {["Content-Type"] = "application/json", ["X-Bank-Signature"] = signatures[i]}, bodies[i])
end
"""
    )
    path.write_text("\n".join(lua).replace("THREADS", str(WRK_THREADS)), encoding="utf-8")
    return path


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (granian's workers), from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _profiled(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy samples one process while the load runs (collapsed stacks, one per line:
    feed them to a flame graph tool, or add up frames)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--format",
            "raw",
            "--rate",
            "200",
            "--nonblocking",
            "--duration",
            str(max(1, round(seconds))),
            "--pid",
            str(pid),
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(url: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never answered")


def _median(loads: list[Load]) -> Load:
    return Load(
        rps=statistics.median(x.rps for x in loads),
        p50_ms=statistics.median(x.p50_ms for x in loads),
        p99_ms=statistics.median(x.p99_ms for x in loads),
        requests=sum(x.requests for x in loads),
        not_ok=sum(x.not_ok for x in loads),
    )


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--flows", type=int, default=60, help="whole contract flows (≤ 199)")
    parser.add_argument("--flow-concurrency", type=int, default=8)
    parser.add_argument(
        "--profile", type=Path, help="a folder: py-spy profiles of each endpoint, first round"
    )
    parser.add_argument("--only", help="measure only endpoints whose label contains this")
    return parser.parse_args()


def _start_servers(tmp: str, env: dict[str, str], workers: int) -> tuple[list[Any], str, str]:
    """The bare endpoint and the project's server on the same granian settings; their
    processes and base URLs."""
    bare_port, port = _free_port(), _free_port()
    serve = [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--data-dir", tmp]
    servers = [
        subprocess.Popen(
            [sys.executable, "bare_app.py", str(bare_port), str(workers)],
            cwd=BENCH,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            serve + (["--workers", str(workers)] if workers > 1 else []),
            cwd=ROOT,
            env={
                **env,
                "WANGQIAN_MOCKS_ENABLED": "true",
                "WANGQIAN_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    return servers, f"http://127.0.0.1:{bare_port}/", f"http://127.0.0.1:{port}"


def _spied(args: argparse.Namespace, pid: int, name: str, first: bool, load: Any) -> Any:
    """``load()`` while py-spy samples the server, when profiles were asked for (first
    round only)."""
    spy = None
    if args.profile and first:
        args.profile.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"\W+", "-", name).strip("-")
        # The server's first worker (its own children are typesetters).
        worker = (_children(pid) or [pid])[0]
        spy = _profiled(worker, args.profile / f"{slug}.txt", args.seconds)
    try:
        return load()
    finally:
        if spy is not None:
            spy.wait()


def _print_table(results: dict[str, list[Load]], baseline: float, seconds: float) -> None:
    header = f"{'endpoint':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ratio':>7}"
    print(f"  {header}  not 2xx")
    for label, loads in results.items():
        m = _median(loads)
        print(
            f"  {label:<28} {m.rps:9.0f} {m.p50_ms:8.2f} {m.p99_ms:8.2f} "
            f"{m.rps / baseline:7.3f}  {m.not_ok}/{m.requests}"
        )
    print(
        "  (verify with a wrong password: after 5 failures per number and hour every "
        "answer is 429, so this row is the refusal path; it runs last)"
    )
    print(
        "  (bank webhooks: each a new signed payment.received with its own bank "
        f"transaction, {int(seconds * 2500)} a round; past those, replays)"
    )


def main() -> int:
    args = _arguments()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: python3 scripts/dev.py bench installs it")

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WANGQIAN_")}
        env["WANGQIAN_LOG_LEVEL"] = "WARNING"
        demo = [sys.executable, "-m", "api.cli", "demo", "--no-serve", "--data-dir", tmp]
        subprocess.run(demo, cwd=ROOT, env=env, check=True, capture_output=True)
        big = asyncio.run(_big_building(data_dir))
        people = asyncio.run(_arrange(data_dir, args.flows + 1))
        world = __import__("json").loads((data_dir / "demo.json").read_text(encoding="utf-8"))
        servers, bare, base = _start_servers(tmp, env, args.workers)
        try:
            _wait_ready(bare)
            _wait_ready(f"{base}/readyz")
            sealed = asyncio.run(_one_flow(base, people))
            results = _measure(args, data_dir, world, big, sealed, servers[1].pid, bare, base)
            baseline = _median(results["bare Litestar endpoint"]).rps
            _print_table(results, baseline, args.seconds)
            _measure_flows(args, people, servers[1].pid, bare, base, baseline)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=15)
    return 0


def _measure(
    args: argparse.Namespace,
    data_dir: Path,
    world: dict[str, Any],
    big: str,
    sealed: dict[str, Any],
    pid: int,
    bare: str,
    base: str,
) -> dict[str, list[Load]]:
    """The bare endpoint, then each public read and the bank webhooks, round after round;
    wrong passwords last."""
    number, password = sealed["contract_number"], sealed["password"]
    verify = "/api/v1/public/verify"
    targets = [
        ("/healthz", "/healthz"),
        ("building table, 24 units", f"/api/v1/public/buildings/{world['building']['id']}/units"),
        ("building table, 256 units", f"/api/v1/public/buildings/{big}/units"),
        # As a phone asks for it: gzip accepted.
        ("building table, 256, gzip", f"/api/v1/public/buildings/{big}/units", GZIP),
        ("project list", "/api/v1/public/projects"),
        ("verify, right password", f"{verify}?number={number}&password={password}"),
        ("verify, wrong password", f"{verify}?number={number}&password=00000000"),
    ]
    print(
        f"wrk -t2 -c{args.connections}, {args.seconds:g} s each, {args.rounds} round(s); "
        f"granian {args.workers} worker(s), SQLite, loopback; medians over rounds"
    )
    # Wrong passwords go last: past 20 failures an hour from one address, verify
    # refuses that address everything (429), right passwords included.
    refused = targets.pop()
    webhooks = "bank webhook, new payment"
    wanted = [target[0] for target in [*targets, refused]] + [webhooks]
    if args.only:
        targets = [t for t in targets if args.only in t[0]]
        wanted = [label for label in wanted if args.only in label]
    results: dict[str, list[Load]] = {"bare Litestar endpoint": []}
    results.update({label: [] for label in wanted})
    reference, account = asyncio.run(_payment_notice(data_dir))
    load = {"seconds": args.seconds, "connections": args.connections}
    for round_no in range(args.rounds):
        first = round_no == 0
        wrk(bare, seconds=1, connections=4)  # warm up
        results["bare Litestar endpoint"].append(wrk(bare, **load))
        for label, path, *header in targets:
            asked = {"header": header[0]} if header else {}
            wrk(base + path, seconds=1, connections=4, **asked)
            results[label].append(
                _spied(
                    args,
                    pid,
                    label,
                    first,
                    lambda path=path, asked=asked: wrk(base + path, **load, **asked),
                )
            )
        if webhooks in results:
            script = _webhook_script(
                data_dir / "webhooks.lua",
                world["bank_webhook_secret"],
                reference,
                account,
                int(args.seconds * 2500),
                f"R{round_no}-",
            )
            url = f"{base}/api/v1/webhooks/bank"
            results[webhooks].append(
                _spied(
                    args,
                    pid,
                    "webhooks",
                    first,
                    lambda url=url, script=script: wrk(url, **load, script=script),
                )
            )
    for round_no in range(args.rounds if refused[0] in results else 0):
        results[refused[0]].append(
            _spied(args, pid, refused[0], round_no == 0, lambda: wrk(base + refused[1], **load))
        )
    return results


def _measure_flows(
    args: argparse.Namespace,
    people: dict[str, Any],
    pid: int,
    bare: str,
    base: str,
    baseline: float,
) -> None:
    """Whole new-home flows from the Python client, beside that client's own ceiling."""
    ceiling, _ = asyncio.run(_drive(bare, args.seconds, args.flow_concurrency))
    rest = {**people, "buyers": people["buyers"][1:], "keepers": people["keepers"][1:]}
    flows, latencies, _ = _spied(
        args, pid, "flows", True, lambda: asyncio.run(_flows(base, rest, args.flow_concurrency))
    )
    print(
        f"  whole new-home flows (Python client, {args.flow_concurrency} at a time, "
        f"9 requests each): {flows:.1f} flows/s, "
        f"median {statistics.median(latencies) * 1000:.0f} ms; "
        f"ratio {flows / baseline:.5f}, {9 * flows / baseline:.4f} in requests"
    )
    print(
        f"  the Python client's own ceiling on the bare endpoint: {ceiling:.0f} req/s "
        f"({ceiling / baseline:.3f} of wrk's)"
    )


async def _one_flow(base: str, people: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        return await _flow(client, people["agent"], people["buyers"][0], people["keepers"][0])


if __name__ == "__main__":
    raise SystemExit(main())
