"""The kill -9 crash test: the real server (granian, embedded worker, demo world) drives
presale contracts through their whole life (create, issue, the deposit paid by the mock
bank's signed webhook, scan, sign, seal, the messages of the outbox), and is killed with
SIGKILL at random moments, then restarted. After each restart nothing acknowledged is
lost or doubled: every signature and seal that was answered 200 is there once, every
contract goes on to the end (none stuck half-way), `wangqian reconcile` is clean, every
evidence bundle verifies offline, and every contract's messages are sent once.

Used by tests/crash/test_kill9.py (a short run) and bench/bench_crash_kill9.py (50 kills).
"""

from __future__ import annotations

import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from signing.evidence_verify import verify_bundle
from signing.gb_codes import resident_id_check_char
from tests.running_server import RunningServer, login

# The demo building's homes that no demo order holds (floor 1 is commercial, 502 seized,
# the demo's own order takes one of its rooms).
ROOMS = [f"{floor}{n:02d}" for floor in (2, 3, 4, 5, 6) for n in (1, 2, 3, 4)]
DONE = {"filing_pending", "filed", "signed"}


def note(*what: object) -> None:
    """Progress on stderr (seen with -s, and in CI's log when something hangs)."""
    print(f"[crash {time.strftime('%H:%M:%S')}]", *what, file=sys.stderr, flush=True)


class ServerKilledError(Exception):
    """The server went away under a request."""


@dataclass
class Figures:
    kills: int = 0
    contracts: int = 0
    acknowledged: dict[str, int] = field(default_factory=dict)
    restart_seconds: list[float] = field(default_factory=list)

    def ack(self, what: str) -> None:
        self.acknowledged[what] = self.acknowledged.get(what, 0) + 1


class Flow:
    """One contract taken to the end through the API, step by step, resumable."""

    def __init__(self, server: RunningServer, world: dict[str, Any], figures: Figures) -> None:
        self.server = server
        self.world = world
        self.figures = figures
        self.tokens: dict[str, str] = {}
        self.login_extra: dict[str, dict[str, str]] = {}
        self.face_at: dict[str, float] = {}
        # What the server acknowledged (answered 2xx): order id -> steps.
        self.acked: dict[str, set[str]] = {}
        self.killed = threading.Event()
        # The last code read per (order, act): a kill after reading it and before the
        # answer leaves it unused and valid, and the driver signs with it after the
        # restart (the mock inbox dies with the server; a new code waits 60 s).
        self.codes: dict[tuple[str, str], tuple[str, str]] = {}
        self.waiting = threading.Event()  # no kill while the driver only waits
        self.passes = 0  # steps the driver has started: a measure of its progress

    # -- plumbing -------------------------------------------------------------------
    def person(self, **match: str) -> dict[str, Any]:
        return next(p for p in self.world["people"] if all(p.get(k) == v for k, v in match.items()))

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.base, timeout=60)

    def call(self, method: str, path: str, who: str | None = None, **kw: Any) -> httpx.Response:
        headers = kw.pop("headers", {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.token(who)}"
        try:
            with self.http() as http:
                response = http.request(method, path, headers=headers, **kw)
        except httpx.TransportError as gone:
            raise ServerKilledError(str(gone)) from None
        if response.status_code in (401,) and who is not None and "session" in response.text:
            self.tokens.pop(who if who.isdigit() else self.person(role=who)["phone"], None)
            return self.call(method, path, who, headers=headers, **kw)
        return response

    def token(self, who: str) -> str:
        """``who``: a phone, or a demo role (its person's phone)."""
        phone = who if who.isdigit() else self.person(role=who)["phone"]
        if phone not in self.tokens:
            try:
                with self.http() as http:
                    self.tokens[phone] = login(http, phone, **self.login_extra.get(phone, {}))
            except httpx.TransportError as gone:
                raise ServerKilledError(str(gone)) from None
        return self.tokens[phone]

    def code(self, phone: str) -> str:
        inbox = self.call("GET", "/mock/sms/inbox", params={"phone": phone}).json()
        return str(next(m for m in inbox if "code" in m["params"])["params"]["code"])

    def face(self, buyer: dict[str, Any]) -> None:
        """A buyer's real name and a face check (again when the last is 8 minutes old)."""
        phone = buyer["phone"]
        if time.monotonic() - self.face_at.get(phone, -1e9) < 8 * 60:
            return
        notice = self.call("GET", "/api/v1/me/pi-notice", phone).json()
        agreed = self.call(
            "POST", "/api/v1/me/pi-consent", phone, json={"version": notice["version"]}
        )
        assert agreed.status_code == 200, agreed.text
        named = self.call(
            "POST",
            "/api/v1/me/real-name",
            phone,
            json={"name": buyer["name"], "id_number": buyer["id_number"]},
        )
        assert named.status_code == 200, named.text
        started = self.call("POST", "/api/v1/me/face-sessions", phone).json()
        token = parse_qs(urlsplit(started["url"]).query)["biz_token"][0]
        self.call("POST", "/mock/face/page/complete", data={"biz_token": token, "result": "pass"})
        result = self.call("GET", f"/api/v1/me/face-sessions/{started['id']}", phone).json()
        assert result["identity_level"] == "face_verified", result
        self.face_at[phone] = time.monotonic()

    def pools(self, buyers: int, keepers: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """More buyers and seal keepers than the demo's, so that the codes a kill wastes
        stay inside each person's quota (5 a purpose per 10 minutes): buyers the mock
        identity provider is told of, keepers an admin adds and a regulator approves."""
        people = [self.person(name="张三"), self.person(name="李四")]
        for n in range(max(0, buyers - len(people))):
            body17 = f"11010119900101{n + 11:03d}"
            person = {
                "name": "测试" + "甲乙丙丁戊己庚辛"[n],
                "id_number": body17 + resident_id_check_char(body17),
                "phone": f"1371234{n:04d}",
            }
            added = self.call(
                "POST",
                "/mock/faceid/people",
                json={"name": person["name"], "id_number": person["id_number"]},
            )
            assert added.status_code == 200, added.text
            people.append(person)
        for person in people:
            self.face(person)
        keeper_list = [self.person(role="seal_keeper")]
        for n in range(keepers - 1):
            keeper = {"name": "印章" + "甲乙丙丁戊己庚辛"[n], "phone": f"1372345{n:04d}"}
            added = self.call(
                "POST",
                "/api/v1/staff/members",
                "company_admin",
                json={**keeper, "role": "seal_keeper"},
            )
            assert added.status_code == 201, added.text
            approved = self.call(
                "POST",
                f"/api/v1/staff/members/{added.json()['id']}/approve",
                "regulator",
                json={},
            )
            assert approved.status_code == 200, approved.text
            self.login_extra[keeper["phone"]] = {"kind": "staff"}  # its owner confirms
            self.token(keeper["phone"])
            keeper_list.append(keeper)
        return people, keeper_list

    # -- the contract ---------------------------------------------------------------
    def order_for(self, room: str) -> dict[str, Any] | None:
        listed = self.call("GET", "/api/v1/contracts", "sales_agent", params={"limit": 100})
        assert listed.status_code == 200, listed.text
        live = [
            o
            for o in listed.json()["items"]
            if o["unit"]["room_no"] == room and o["status"] not in ("voided", "expired")
        ]
        assert len(live) <= 1, live
        return live[0] if live else None

    def drive(self, room: str, buyer: dict[str, Any], keeper: dict[str, Any]) -> str:
        """Take the order on ``room`` one step further until it is done; its id."""
        unit = next(u["id"] for u in self.world["units"] if u["room_no"] == room)
        zhang = buyer
        for _ in range(60):  # each pass moves one step (a refused one is retried)
            self.passes += 1
            order = self.order_for(room)
            if order is None:
                body = {
                    "unit_id": unit,
                    "kind": "presale",
                    "buyers": [
                        {
                            "name": zhang["name"],
                            "id_number": zhang["id_number"],
                            "phone": zhang["phone"],
                            "share": "",
                        }
                    ],
                    "price_fen": 2_000_000_00,
                    "payment_method": "commercial_loan",
                    "deposit_fen": 50_000_00,
                    "down_payment_fen": 600_000_00,
                    "delivery_date": "2028-06-30",
                }
                created = self.call("POST", "/api/v1/contracts", "sales_agent", json=body)
                assert created.status_code == 201, created.text
                continue
            order_id, status = order["id"], order["status"]
            note(room, status)
            acked = self.acked.setdefault(order_id, set())
            if status in DONE:
                return order_id
            if status == "draft":
                issued = self.call("POST", f"/api/v1/contracts/{order_id}/issue", "sales_agent")
                assert issued.status_code in (200, 409), issued.text
                continue
            if status == "awaiting_signatures":
                if not self.deposit_paid(order_id):
                    self.pay(order_id)
                    continue
                if not order["parties"][0]["signed_at"]:
                    self.face(buyer)
                    scanned = self.call(
                        "POST", "/api/v1/scan", buyer["phone"], json={"scene": order["scene"]}
                    )
                    assert scanned.status_code == 200, scanned.text
                    signed = self.act(
                        order_id,
                        "signatures",
                        buyer["phone"],
                    )
                    if signed is not None and signed.status_code == 200:
                        acked.add("signed")
                        self.figures.ack("signature")
                    continue
            if status == "awaiting_seal":
                sealed = self.act(order_id, "seal", keeper["phone"])
                if sealed is not None and sealed.status_code == 200:
                    acked.add("sealed")
                    self.figures.ack("seal")
                continue
            raise AssertionError(f"order {order_id} in an unexpected state: {status}")
        raise AssertionError(f"the order on {room} is stuck: {self.order_for(room)}")

    def act(self, order_id: str, act: str, phone: str) -> httpx.Response | None:
        """A signature ("signatures") or the seal ("seal"): a code, then the act. None
        when only a wait happened (the next pass tries again)."""
        path = f"/api/v1/contracts/{order_id}/{act}"
        kept = self.codes.get((order_id, act))
        if kept is None:
            challenge = self.call("POST", f"{path}/challenge", phone)
            if challenge.status_code == 429:  # a code sent just before the kill
                self.wait(challenge)
                return None
            assert challenge.status_code == 200, challenge.text
            kept = (challenge.json()["challenge_id"], self.code(phone))
            self.codes[(order_id, act)] = kept
        done = self.call("POST", path, phone, json={"challenge_id": kept[0], "code": kept[1]})
        self.codes.pop((order_id, act), None)
        assert done.status_code in (200, 400, 409, 410, 429), done.text
        return done

    def wait(self, refused: httpx.Response) -> None:
        """A new code only after the resend interval (60 s; the code sent before the kill
        died with the mock inbox): never a lock. A kill meanwhile ends the wait."""
        wait = int(refused.headers.get("Retry-After", "1"))
        assert wait <= 61, refused.text
        note("waiting", wait, "s:", refused.json().get("code"))
        self.waiting.set()
        try:
            if self.killed.wait(wait):
                raise ServerKilledError("killed while waiting")
        finally:
            self.waiting.clear()

    def notices(self, order_id: str) -> list[dict[str, Any]]:
        listed = self.call("GET", f"/api/v1/contracts/{order_id}/payment-notices", "sales_agent")
        assert listed.status_code == 200, listed.text
        return list(listed.json()["items"])

    def deposit_paid(self, order_id: str) -> bool:
        deposit = next(n for n in self.notices(order_id) if n["kind"] == "deposit")
        return bool(deposit["status"] == "paid")

    def pay(self, order_id: str) -> None:
        deposit = next(n for n in self.notices(order_id) if n["kind"] == "deposit")
        query = parse_qs(urlsplit(deposit["pay_url"]).query)
        paid = self.call(
            "POST",
            "/mock/bank/payments",
            json={
                "reference": query["reference"][0],
                "amount_fen": int(query["amount_fen"][0]),
                "account": query["account"][0],
            },
        )
        if paid.status_code == 200:
            self.figures.ack("payment")


def check_invariants(flow: Flow, done: list[str], root: bytes, *, reconcile: bool) -> None:
    """What must hold after every restart (the ledger check, a process of its own, at the
    end and every few restarts)."""
    for order_id, acked in flow.acked.items():
        order = flow.call("GET", f"/api/v1/contracts/{order_id}", "sales_agent").json()
        if "signed" in acked:
            assert order["parties"][0]["signed_at"], (order_id, "acknowledged signature lost")
        if "sealed" in acked:
            assert order["status"] in DONE, (order_id, "acknowledged seal lost")
    for order_id in done:
        order = flow.call("GET", f"/api/v1/contracts/{order_id}", "sales_agent").json()
        assert order["status"] in DONE and order["contract_number"], order
        bundle = flow.call("GET", f"/api/v1/contracts/{order_id}/evidence", "sales_agent")
        assert bundle.status_code == 200, bundle.text
        report = verify_bundle(bundle.json(), root)
        assert report.ok, report.to_text()
        roles = sorted(s["role"] for s in bundle.json()["signatures"])
        assert roles == ["buyer", "seal"], roles  # once each, never twice
        deposit = next(n for n in flow.notices(order_id) if n["kind"] == "deposit")
        assert (deposit["paid_fen"], deposit["status"]) == (50_000_00, "paid"), deposit
    if reconcile:
        reconciled = flow.server.cli("reconcile")
        output = reconciled.stdout.decode() + reconciled.stderr.decode()
        assert reconciled.returncode == 0, output


def messages_sent_once(flow: Flow, done: list[str], timeout: float = 20) -> None:
    """Each contract's "signed" SMS is queued once and never sent twice, also across
    kills; none is given up on. (Delivery itself may wait: the outbox spaces messages to
    one phone, and these buyers get many.)"""
    deadline = time.monotonic() + timeout
    for order_id in done:
        while True:
            events = flow.call("GET", f"/api/v1/contracts/{order_id}/events", "sales_agent")
            notes = events.json()["notifications"]
            signed = [n for n in notes if n["template"] == "contract_signed"]
            assert len(signed) <= 1, signed
            assert all(n["status"] != "dead" for n in notes), notes
            if signed:
                break
            assert time.monotonic() < deadline, (order_id, notes)
            time.sleep(0.3)


def pdfs_finished(flow: Flow, done: list[str], timeout: float = 20) -> None:
    """Each contract's PDF is finished and recognised by public verify-pdf, also when a kill
    fell between the seal's commit and its finishing (the worker's sweep finishes it)."""
    deadline = time.monotonic() + timeout
    for order_id in done:
        while True:
            pdf = flow.call("GET", f"/api/v1/contracts/{order_id}/pdf", "sales_agent")
            if pdf.status_code == 200:
                break
            assert pdf.status_code == 409 and pdf.json()["code"] == "pdf_not_ready", pdf.text
            assert time.monotonic() < deadline, (order_id, "the PDF was never finished")
            time.sleep(0.3)
        checked = flow.call(
            "POST",
            "/api/v1/public/verify-pdf",
            content=pdf.content,
            headers={"Content-Type": "application/pdf"},
        ).json()
        assert checked["ours"] and checked["unchanged"], (order_id, checked)


def run(data_dir: Path, database_url: str, *, kills: int, seed: int, max_delay: float) -> Figures:
    """Drive contracts and kill the server ``kills`` times at random moments."""
    rng = random.Random(seed)
    figures = Figures()
    server = RunningServer(data_dir, database_url)
    world = server.load_demo()
    free = [r for r in ROOMS if r not in ("502",)]
    server.start()
    root = (
        (data_dir / "keystore" / "root.crt.pem").read_bytes()
        if (data_dir / "keystore" / "root.crt.pem").exists()
        else b""
    )
    flow = Flow(server, world, figures)
    done: list[str] = []
    try:
        # Logins and the face check before the first kill: a login code sent just before
        # a kill could not be asked again for a minute (sessions live in the database).
        for who in ("sales_agent", "company_admin", "regulator"):
            flow.token(who)
        # Fifty kills finish two dozen contracts in ten minutes: each person's share of
        # them, with the codes the kills waste, has to stay inside that quota.
        buyers, keepers = flow.pools(buyers=10, keepers=8)
        contract_no = 0

        def parties() -> tuple[dict[str, Any], dict[str, Any]]:
            return buyers[contract_no % len(buyers)], keepers[contract_no % len(keepers)]

        demo_rooms = {
            o["unit"]["room_no"]
            for o in flow.call("GET", "/api/v1/contracts", "sales_agent").json()["items"]
        }
        rooms = [r for r in free if r not in demo_rooms]
        room_iter = iter(rooms)
        room = next(room_iter)
        delay_cap = max_delay
        while figures.kills < kills:
            # The driver works in a thread; the server dies under it at a random moment.
            outcome: dict[str, Any] = {}

            def work(room: str = room, outcome: dict[str, Any] = outcome) -> None:
                try:
                    outcome["done"] = flow.drive(room, *parties())
                except ServerKilledError:
                    outcome["killed"] = True
                except BaseException as failed:  # reported in the main thread
                    outcome["error"] = failed

            flow.killed.clear()
            worker = threading.Thread(target=work, daemon=True)
            worker.start()
            passes_before = flow.passes
            round_started = time.monotonic()
            worker.join(timeout=rng.uniform(0.05, delay_cap))
            while worker.is_alive() and flow.waiting.is_set():
                # A kill during a pure wait (a code's resend interval) tests nothing and
                # only starts the wait again: let it end, then kill at a random moment of
                # the work that follows.
                worker.join(timeout=0.2)
                if worker.is_alive() and not flow.waiting.is_set():
                    worker.join(timeout=rng.uniform(0.05, delay_cap))
            if not worker.is_alive() and "done" in outcome:
                # On a fast machine a whole contract can end before the delay does, and the
                # rooms run out before the kills: the next delay is drawn from within the
                # time this contract took, so the kills fall inside contracts again.
                delay_cap = max(0.1, time.monotonic() - round_started)
            else:
                # On a slow machine one step (a signature with its PDF revision) can outlast
                # every delay: when a round started no new step, the next may wait longer,
                # so kills keep falling inside steps and the contracts still move on.
                delay_cap = max_delay if flow.passes > passes_before + 1 else delay_cap * 2
            if worker.is_alive():
                server.kill9()
                flow.killed.set()
                figures.kills += 1
                note("killed", figures.kills)
                worker.join(timeout=60)
                assert not worker.is_alive(), "the driver did not notice the kill"
                started = time.monotonic()
                server.start()
                figures.restart_seconds.append(time.monotonic() - started)
                note("restarted in", round(figures.restart_seconds[-1], 1), "s")
            if "error" in outcome:
                raise outcome["error"]
            if "done" in outcome:
                done.append(outcome["done"])
                figures.contracts += 1
                contract_no += 1
                room = next(room_iter)
            if not root:
                keystore = data_dir / "keystore" / "root.crt.pem"
                root = keystore.read_bytes() if keystore.exists() else b""
            if root:
                check_invariants(flow, done, root, reconcile=figures.kills % 5 == 0)
                note("invariants hold;", len(done), "contracts done")
        # Everything under way is finished after the last restart, then checked whole.
        flow.killed.clear()
        done.append(flow.drive(room, *parties()))
        figures.contracts += 1
        root = (data_dir / "keystore" / "root.crt.pem").read_bytes()
        check_invariants(flow, done, root, reconcile=True)
        messages_sent_once(flow, done)
        pdfs_finished(flow, done)
    finally:
        server.stop()
    return figures
