"""The ``wangqian`` command: serve, demo, migrate, worker, import-survey, verify, reconcile."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from api.settings import Settings


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    data_dir = getattr(args, "data_dir", None)
    return Settings.from_env(data_dir=Path(data_dir) if data_dir else None, **overrides)


def _export(settings: Settings) -> None:
    """Server workers are separate processes: hand them the settings by environment."""
    os.environ["WANGQIAN_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["WANGQIAN_MOCKS_ENABLED"] = "true" if settings.mocks_enabled else "false"
    os.environ["WANGQIAN_PUBLIC_BASE_URL"] = settings.public_base_url


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces

    from api.contracts.pdfs import prepare_typesetting

    _export(settings)
    prepare_typesetting(settings)  # once here, not in every worker's first contract
    Granian(
        "api.app:create_app_from_env",
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        factory=True,
        log_access=False,  # our own request log carries the request id
    ).serve()


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not settings.database_url:
        from api.db.migrate import upgrade

        upgrade(settings)
    settings.master_secret()  # create it before workers race to
    _serve(settings, args.host, args.port, args.workers)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from api.db.migrate import upgrade

    settings = _settings(args)
    upgrade(settings)
    print(f"数据库已迁移到最新版本: {_safe_url(settings.effective_database_url)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from api.db.migrate import upgrade

    # Phones on the LAN need an address they can open: WANGQIAN_PUBLIC_BASE_URL wins, and
    # a wildcard host is no address at all.
    host = "127.0.0.1" if args.host in {"0.0.0.0", "::"} else args.host  # noqa: S104
    base_url = os.environ.get("WANGQIAN_PUBLIC_BASE_URL") or f"http://{host}:{args.port}"
    settings = _settings(args, mocks_enabled=True, public_base_url=base_url)
    upgrade(settings)
    world = asyncio.run(_load_demo(settings))
    world["base_url"] = base_url
    from api.demo import write_demo_file
    from api.outside import bank_link

    # What signs a webhook the demo accepts (the mock bank's own secret, unless configured).
    world["bank_webhook_secret"] = bank_link(settings).webhook_secrets[0]
    path = write_demo_file(settings.data_dir, world)
    building = world["building"]["id"]
    print("Wangqian 网签 demo")
    print(f"  mini program    {base_url}/miniapp/")
    order = world.get("demo_order")
    if isinstance(order, dict):
        print(f"  order to sign   {order['scan_url']}  (buyer 张三 {order['buyer_phone']})")
    print(f"  API docs        {base_url}/api/docs")
    print(f"  楼盘表          {base_url}/api/v1/public/buildings/{building}/units")
    print(f"  projects        {base_url}/api/v1/public/projects")
    print(f"  SMS inbox       {base_url}/mock/sms/inbox?phone=13900000001")
    print(f"  login           POST {base_url}/api/v1/auth/sms/send, then /api/v1/auth/sms/verify")
    print(f'  WeChat (mock)   POST {base_url}/mock/wechat/login {{"user": "..."}} -> code')
    print(f"  demo world      {path}")
    print("  after the seal (the regulator 周监管 logs in like any staff member):")
    print(f"    备案 filing   GET {base_url}/api/v1/filings?status=pending, then")
    print("                  POST /api/v1/contracts/<id>/filing/approve (or /reject {reason})")
    print("    退房 cancel   a buyer taps 申请退房 on the contract page (or")
    print("                  POST /api/v1/contracts/<id>/cancellation {reason}); every buyer signs")
    print("                  the termination in the mini program; the seal keeper")
    print("                  POST /api/v1/cancellations/<id>/seal/challenge and /seal; the")
    print("                  regulator POST /api/v1/cancellations/<id>/approve")
    title = world["resale_title"]
    assert isinstance(title, dict)
    print("  resale 二手房 (the seller 王五 13900000003 sells to 张三):")
    print("    1 王五 logs in, real-name and face check, then in the mini program 卖房 →")
    print(f"      房源验证 {title['certificate_no']}, check code {title['check_code']}")
    print("      (POST /api/v1/resale/title-checks); fills the contract for 张三")
    print("      (POST /api/v1/resale/orders) and shows the QR (POST /api/v1/contracts/<id>/issue)")
    print("    2 张三 scans it; both pass the face check and sign (我的签署 lists it too)")
    print("    3 王五 submits (POST /api/v1/contracts/<id>/submit): 已签约, number and password;")
    print("      张三 pays into the city's resale account from the payment notices")
    print("    4 the regulator records 转移登记完成")
    print("      (POST /api/v1/contracts/<id>/transfer-registered): the money goes to 王五's")
    print("      account; or either party cancels online (注销) and")
    print("      both sign again, the one who started it submits")
    for person in world["people"]:
        print(f"  {person['role']:<14}  {person['name']}  {person['phone']}")
    sys.stdout.flush()
    if args.no_serve:
        return 0
    _serve(settings, args.host, args.port, 1)
    return 0


async def _load_demo(settings: Settings) -> dict[str, object]:
    from api.contracts.policy import ContractPolicy
    from api.core.clock import SystemClock
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.demo import ensure_demo_order, load_demo_world

    database = create_database(settings)
    keys = ServiceKeys.from_master(settings.master_secret())
    now = SystemClock().now()
    try:
        async with database.writer() as session, session.begin():
            world = await load_demo_world(session, keys, now=now)
        async with database.writer() as session, session.begin():
            world["demo_order"] = await ensure_demo_order(
                session, keys, now=now, policy=ContractPolicy.from_settings(settings)
            )
        return world
    finally:
        await database.dispose()


def cmd_import_survey(args: argparse.Namespace) -> int:
    from api.register.survey import SurveyInvalidError

    settings = _settings(args)
    raw = Path(args.file).read_bytes()
    try:
        building, created, updated = asyncio.run(_import(settings, raw))
    except SurveyInvalidError as rejected:
        print(rejected.detail, file=sys.stderr)
        for error in rejected.errors:
            where = f"第 {error.row} 行" if error.row else "文件"
            print(f"  {where} [{error.code}] {error.message}", file=sys.stderr)
        return 1
    print(f"楼栋 {building}: 新增 {created} 户，更新 {updated} 户。")
    return 0


async def _import(settings: Settings, raw: bytes) -> tuple[str, int, int]:
    from api.core.clock import SystemClock
    from api.db.engine import create_database
    from api.register.survey import import_survey

    database = create_database(settings)
    try:
        async with database.writer() as session, session.begin():
            building, created, updated = await import_survey(session, raw, now=SystemClock().now())
            return f"{building.name} ({building.survey_no})", created, updated
    finally:
        await database.dispose()


def cmd_worker(args: argparse.Namespace) -> int:
    """Deliver queued notifications: beside API nodes that run with
    WANGQIAN_OUTBOX_WORKER=off, as many of these as wanted (PostgreSQL shares the queue)."""
    return asyncio.run(_work(_settings(args), once=args.once))


async def _work(settings: Settings, *, once: bool) -> int:
    import signal

    from api.app import periodic_jobs
    from api.contracts.pdfs import ContractPdfs
    from api.core.clock import SystemClock
    from api.core.keys import ServiceKeys
    from api.db.engine import create_database
    from api.outbox.worker import build_worker
    from api.outside import build_outside, new_http_client
    from notifications.templates import check_templates

    check_templates()
    database = create_database(settings)
    http = new_http_client()
    outside = build_outside(settings, http)
    for warning in outside.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    clock = SystemClock()
    keys = ServiceKeys.from_master(settings.master_secret())
    worker = build_worker(
        database,
        keys,
        clock,
        outside=outside,
        periodic=periodic_jobs(
            database,
            clock,
            keys,
            outside,
            http,
            pdfs=ContractPdfs.build(settings, http, clock),
        ),
    )
    try:
        if once:
            sent = await worker.run_once()
            await worker.run_periodic()
            print(f"已发送 {sent} 条消息。")
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        print(f"outbox worker {worker.name} running; Ctrl-C to stop", flush=True)
        await worker.run(stop, poll_seconds=settings.outbox_poll_seconds)
        return 0
    finally:
        await http.aclose()
        await database.dispose()


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Check the escrow ledger against the recorded bank events and its invariants, and
    with ``--statement FILE`` against the bank's daily statement file (对账文件)."""
    statement = Path(args.statement).read_bytes() if args.statement else None
    problems, summary = asyncio.run(_reconcile(_settings(args), statement))
    print(summary)
    for problem in problems:
        print(f"  不一致: {problem}", file=sys.stderr)
    print("对账通过。" if not problems else f"对账失败: {len(problems)} 处不一致。")
    return 0 if not problems else 1


async def _reconcile(settings: Settings, statement: bytes | None) -> tuple[list[str], str]:
    from api.db.engine import create_database
    from api.escrow.reconcile import reconcile, reconcile_summary
    from api.escrow.statement_import import compare_statement, parse_statement

    database = create_database(settings)
    try:
        async with database.reader() as session:
            problems = await reconcile(session)
            summary = await reconcile_summary(session)
            if statement is not None:
                lines, unreadable = parse_statement(statement)
                problems += [f"对账文件 {p}" for p in unreadable]
                problems += await compare_statement(session, lines)
                summary += f" 对账文件 {len(lines)} 笔。"
            return problems, summary
    finally:
        await database.dispose()


def cmd_verify(args: argparse.Namespace) -> int:
    from signing.verify import main as verify_main

    return verify_main([args.bundle, "--root", args.root])


def cmd_verify_qr(args: argparse.Namespace) -> int:
    from signing.verify import main_qr

    extra = ["--document-hash", args.document_hash] if args.document_hash else []
    return main_qr([args.code, "--root", args.root, "--certs", args.certs, *extra])


def cmd_verify_pdf(args: argparse.Namespace) -> int:
    from signing.verify import main_pdf

    return main_pdf([args.pdf, "--root", args.root])


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wangqian", description="Wangqian 网签 service")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_dir(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", help="data directory (default ./var or WANGQIAN_DATA_DIR)")

    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    data_dir(serve)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="bring the database schema up to date")
    data_dir(migrate)
    migrate.set_defaults(func=cmd_migrate)

    demo = sub.add_parser("demo", help="serve with mocks and a demo world")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--no-serve", action="store_true", help="load the world and exit")
    data_dir(demo)
    demo.set_defaults(func=cmd_demo)

    survey = sub.add_parser("import-survey", help="import a survey file (户室对照表)")
    survey.add_argument("file")
    data_dir(survey)
    survey.set_defaults(func=cmd_import_survey)

    worker = sub.add_parser("worker", help="deliver queued notifications (SMS, WeChat)")
    worker.add_argument("--once", action="store_true", help="deliver what is due, then exit")
    data_dir(worker)
    worker.set_defaults(func=cmd_worker)

    reconcile = sub.add_parser(
        "reconcile", help="check the escrow ledger against bank events and its invariants"
    )
    reconcile.add_argument("--statement", help="the bank's daily statement file (CSV) to compare")
    data_dir(reconcile)
    reconcile.set_defaults(func=cmd_reconcile)

    verify = sub.add_parser("verify", help="verify an evidence bundle offline")
    verify.add_argument("bundle")
    verify.add_argument("--root", required=True, help="the platform root certificate (PEM)")
    verify.set_defaults(func=cmd_verify)

    verify_qr = sub.add_parser("verify-qr", help="verify a contract's QR code offline")
    verify_qr.add_argument("code", help="the QR code's text")
    verify_qr.add_argument("--root", required=True, help="the platform root certificate (PEM)")
    verify_qr.add_argument("--certs", required=True, help="the platform's certificates (PEM)")
    verify_qr.add_argument("--document-hash", help="the document the code must be for")
    verify_qr.set_defaults(func=cmd_verify_qr)

    verify_pdf = sub.add_parser("verify-pdf", help="verify a signed contract PDF offline")
    verify_pdf.add_argument("pdf")
    verify_pdf.add_argument("--root", required=True, help="the platform root certificate (PEM)")
    verify_pdf.set_defaults(func=cmd_verify_pdf)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
