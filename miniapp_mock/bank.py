"""Mock supervising bank (监管银行): a payment page and the bank's signed webhooks.

Protocol (what a real bank integration must speak; configuration swaps this mock out):

- Every event is ``POST {api}/api/v1/webhooks/bank`` with a JSON body
  ``{"id", "type", "created", "data": {"transaction_id", "account_number", "amount_fen",
  "reference", "instruction_id", "payer_name"}}`` and the header
  ``X-Bank-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
- ``type`` is ``payment.received`` (a buyer paid into a supervised account, ``reference``
  is the payment notice's reference), ``refund.completed``, ``release.completed`` or
  ``payout.completed`` (a resale's money paid to its sellers) (the
  bank executed our instruction ``instruction_id``).
- A retry resends the same body (same ``transaction_id``) with a fresh signature.

Pages and endpoints (no ``/mock`` prefix; the API mounts this app there):

- ``GET /bank/pay?reference=&amount_fen=&account=&sig=``: the mobile page a notice's QR
  opens. ``sig`` is the hex HMAC-SHA256 (pay link secret) of ``reference|amount_fen|account``:
  a link whose reference, amount or account was changed is refused. The page shows the
  amount in yuan, fixed by the signed link (partial and over-payments are tried through
  ``POST /bank/payments``); paying posts ``/bank/pay``. ``return`` (optional, a path under
  ``/miniapp/`` of the same site) is where its 返回 link leads.
- ``POST /bank/gateway``: the bank's instruction gateway (银企直联 front-end). Our approved
  refunds and releases arrive signed (``X-Wangqian-Signature: t=,v1=`` HMAC-SHA256 of
  "t.body" with the gateway secret) with ``Idempotency-Key: <instruction id>``; the same
  instruction again gets the same ``bank_reference``, a different body under the same key
  409. ``POST /bank/gateway/faults {"status": 503, "count": 1}`` fails the next calls;
  ``GET /bank/gateway/instructions`` lists what arrived.
- ``POST /bank/payments`` (JSON): the same payment without a browser.
- ``POST /bank/instructions/{id}/execute`` ``{kind, account_number, amount_fen}``: the bank
  clerk executes a refund or release and the confirmation webhook goes out.
- ``POST /bank/events/{transaction_id}/redeliver``: send an event again (a retry).
- ``GET /bank/events``: what was sent and what the API answered.

Shares no code with the API on purpose: the signature is computed here independently.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, URLEncodedBody

from miniapp_mock._common import Clock


class PaymentRequest(msgspec.Struct, forbid_unknown_fields=True):
    reference: str
    amount_fen: int
    account: str
    payer_name: str = ""
    transaction_id: str = ""  # the bank's own id; generated when empty


class ExecuteRequest(msgspec.Struct, forbid_unknown_fields=True):
    kind: Literal["refund", "release", "payout"]
    account_number: str
    amount_fen: int


@dataclass
class PayForm:
    reference: str
    amount_fen: str
    account: str
    payer_name: str = ""
    return_to: str = ""


class GatewayFault(msgspec.Struct, forbid_unknown_fields=True):
    status: int = 503
    count: int = 1


@dataclass
class BankState:
    secret: str
    webhook_url: str
    clock: Clock
    gateway_secret: str = ""
    pay_link_secret: str = ""
    # Instructions received at the gateway: instruction id -> (body, bank reference).
    instructions: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    gateway_faults: list[int] = field(default_factory=list)
    # Set by whoever mounts the mock (the API passes its own client, so tests stay in
    # process); None = a fresh client per delivery.
    http: httpx.AsyncClient | None = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def sign(self, body: bytes, timestamp: int | None = None) -> str:
        t = int(self.clock().timestamp()) if timestamp is None else timestamp
        mac = hmac.new(self.secret.encode(), f"{t}.".encode() + body, hashlib.sha256)
        return f"t={t},v1={mac.hexdigest()}"

    def new_event(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        txn = data.get("transaction_id") or "BK" + secrets.token_hex(10).upper()
        event = {
            "id": "evt_" + secrets.token_hex(8),
            "type": kind,
            "created": int(self.clock().timestamp()),
            "data": {**data, "transaction_id": txn},
        }
        self.events[txn] = event
        return event

    async def deliver(self, event: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "X-Bank-Signature": self.sign(body)}
        try:
            if self.http is not None:
                response = await self.http.post(self.webhook_url, content=body, headers=headers)
            else:
                async with httpx.AsyncClient(timeout=10) as client:
                    response = await client.post(self.webhook_url, content=body, headers=headers)
            status, answer = response.status_code, _json(response)
        except httpx.HTTPError as error:
            status, answer = 0, {"error": str(error)}
        record = {
            "transaction_id": event["data"]["transaction_id"],
            "type": event["type"],
            "status": status,
            "answer": answer,
        }
        self.deliveries.append(record)
        return record


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"text": response.text[:500]}


def _bank(state: State) -> BankState:
    return state.mock_bank


def _mask(account: str) -> str:
    return account[:4] + " **** **** " + account[-4:] if len(account) > 8 else "****"


_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>监管银行 · 缴款</title>
<style>
body {{ font-family: -apple-system, "PingFang SC", sans-serif; margin: 0; background: #f4f6f8;
  color: #1f2329; }}
.amount {{ font-size: 28px; font-weight: 600; margin: 4px 0; }}
.back {{ display: block; min-height: 48px; line-height: 48px; text-align: center; color: #8c0a1f;
  background: #fff; border: 1px solid #8c0a1f; border-radius: 8px; text-decoration: none; }}
.note {{ color: #5c6370; font-size: 12px; }}
main {{ padding: 20px; max-width: 420px; margin: auto; }}
.card {{ background: #fff; border-radius: 12px; padding: 16px; margin-bottom: 16px; }}
label {{ display: block; margin: 12px 0 4px; color: #555; }}
input {{ width: 100%; font-size: 18px; padding: 12px; box-sizing: border-box; min-height: 48px; }}
button {{ width: 100%; font-size: 18px; padding: 12px; background: #c8102e; color: #fff;
  border: 0; border-radius: 8px; margin-top: 16px; }}
</style></head>
<body><main>
<h2>预售资金监管账户缴款</h2>
{body}
<p class="note">模拟银行页面，仅用于演示与测试。</p>
</main></body></html>
"""

_FORM = """<div class="card">
<p>缴款金额</p>
<p class="amount" id="amount-yuan">¥{yuan}</p>
<p>缴款编号：<b>{reference}</b></p>
<p>收款账户：{account_masked}</p>
</div>
<form class="card" method="post" action="pay">
<input type="hidden" name="reference" value="{reference}">
<input type="hidden" name="account" value="{account}">
<input type="hidden" name="amount_fen" value="{amount}">
<input type="hidden" name="return_to" value="{return_to}">
<label for="payer">付款人</label>
<input id="payer" name="payer_name" value="" autocomplete="name">
<button type="submit">确认支付 ¥{yuan}</button>
</form>
{back}
"""


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}.{fen % 100:02d}"


def _back(return_to: str, label: str) -> str:
    """The link back to the service page: only a path of the mini program on this site."""
    if not return_to.startswith("/miniapp/") or "//" in return_to:
        return ""
    return f'<p><a class="back" id="back" href="{html.escape(return_to)}">{label}</a></p>'



def _link_ok(bank: BankState, reference: str, amount_fen: int, account: str, sig: str) -> bool:
    if not bank.pay_link_secret:
        return True
    message = f"{reference}|{amount_fen}|{account}".encode()
    expected = hmac.new(bank.pay_link_secret.encode(), message, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), sig.encode())


@get("/bank/pay", media_type=MediaType.HTML)
async def bank_pay_page(
    reference: FromQuery[str], account: FromQuery[str], state: State,
    request: Request[Any, Any, Any],
    amount_fen: FromQuery[int] = 0, sig: FromQuery[str] = "",
) -> Response[str]:
    return_to = request.query_params.get("return", "")
    if not _link_ok(_bank(state), reference, amount_fen, account, sig):
        body = '<div class="card"><p>缴款链接已被修改或无效，请从网签系统重新打开。</p></div>'
        return Response(_PAGE.format(body=body), media_type=MediaType.HTML, status_code=400)
    body = _FORM.format(
        reference=html.escape(reference),
        account=html.escape(account),
        account_masked=html.escape(_mask(account)),
        amount=amount_fen,
        yuan=_yuan(amount_fen),
        return_to=html.escape(return_to),
        back=_back(return_to, "返回网签"),
    )
    return Response(_PAGE.format(body=body), media_type=MediaType.HTML)


async def _pay(bank: BankState, data: PaymentRequest) -> dict[str, Any]:
    event = bank.new_event(
        "payment.received",
        {
            "transaction_id": data.transaction_id,
            "account_number": data.account,
            "amount_fen": data.amount_fen,
            "reference": data.reference,
            "payer_name": data.payer_name,
        },
    )
    return await bank.deliver(event)


@post("/bank/pay", media_type=MediaType.HTML, status_code=200)
async def bank_pay_submit(data: URLEncodedBody[PayForm], state: State) -> Response[str]:
    try:
        amount = int(data.amount_fen)
    except ValueError:
        amount = 0
    if amount <= 0:
        body = '<div class="card"><p>金额不正确。</p></div>'
        return Response(_PAGE.format(body=body), media_type=MediaType.HTML, status_code=422)
    record = await _pay(
        _bank(state),
        PaymentRequest(
            reference=data.reference,
            amount_fen=amount,
            account=data.account,
            payer_name=data.payer_name,
        ),
    )
    ok = 200 <= record["status"] < 300
    message = (
        "支付成功，款项已进入预售资金监管账户。" if ok else "银行已扣款，通知网签系统失败，将重试。"
    )
    body = (
        f'<div class="card"><p id="paid">{message}</p>'
        f"<p>银行流水号：{html.escape(record['transaction_id'])}</p>"
        f"<p>金额：{_yuan(amount)} 元</p></div>" + _back(data.return_to, "返回网签查看缴款结果")
    )
    return Response(_PAGE.format(body=body), media_type=MediaType.HTML)


@post("/bank/payments", status_code=200)
async def bank_payments(data: JSONBody[PaymentRequest], state: State) -> dict[str, Any]:
    return await _pay(_bank(state), data)


@post("/bank/instructions/{instruction_id:str}/execute", status_code=200)
async def bank_execute(
    instruction_id: FromPath[str], data: JSONBody[ExecuteRequest], state: State
) -> dict[str, Any]:
    bank = _bank(state)
    event = bank.new_event(
        f"{data.kind}.completed",
        {
            "transaction_id": "",
            "account_number": data.account_number,
            "amount_fen": data.amount_fen,
            "instruction_id": instruction_id,
        },
    )
    return await bank.deliver(event)


@post("/bank/events/{transaction_id:str}/redeliver", status_code=200)
async def bank_redeliver(transaction_id: FromPath[str], state: State) -> Response[Any]:
    bank = _bank(state)
    event = bank.events.get(transaction_id)
    if event is None:
        return Response({"error": "unknown transaction"}, status_code=404)
    return Response(await bank.deliver(event))


def _gateway_refusal(bank: BankState, request: Request[Any, Any, Any], body: bytes) -> int:
    """0 if the call is genuine, else the HTTP status to refuse it with."""
    parts = dict(p.strip().partition("=")[::2] for p in request.headers.get(
        "x-wangqian-signature", "").split(","))
    stamp = parts.get("t", "")
    if not stamp.isdigit() or abs(bank.clock().timestamp() - int(stamp)) > 300:
        return 401
    mac = hmac.new(bank.gateway_secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return 0 if hmac.compare_digest(mac.hexdigest().encode(), parts.get("v1", "").encode()) else 401


@post("/bank/gateway", status_code=200)
async def bank_gateway(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    bank = _bank(state)
    body = await request.body()
    if _gateway_refusal(bank, request, body):
        return Response({"accepted": False, "code": "SIGNATURE_INVALID"}, status_code=401)
    if bank.gateway_faults:
        return Response({"accepted": False, "code": "BUSY"}, status_code=bank.gateway_faults.pop(0))
    key = request.headers.get("idempotency-key", "")
    try:
        instruction = json.loads(body)
    except ValueError:
        instruction = {}
    if not key or instruction.get("instruction_id") != key:
        return Response({"accepted": False, "code": "BAD_REQUEST"}, status_code=400)
    seen = bank.instructions.get(key)
    if seen is not None and seen[0] != body:
        return Response({"accepted": False, "code": "CONFLICT"}, status_code=409)
    if seen is None:
        seen = bank.instructions[key] = (body, "ZL" + secrets.token_hex(8).upper())
    return Response({"accepted": True, "bank_reference": seen[1]})


@get("/bank/gateway/instructions")
async def bank_gateway_instructions(state: State) -> dict[str, Any]:
    """What arrived at the gateway: instruction id -> {instruction, bank_reference}."""
    return {
        key: {"instruction": json.loads(body), "bank_reference": reference}
        for key, (body, reference) in _bank(state).instructions.items()
    }


@post("/bank/gateway/faults", status_code=200)
async def bank_gateway_faults(data: JSONBody[GatewayFault], state: State) -> dict[str, int]:
    bank = _bank(state)
    bank.gateway_faults.extend([data.status] * max(1, min(data.count, 100)))
    return {"queued": len(bank.gateway_faults)}


@get("/bank/events")
async def bank_events(state: State) -> list[dict[str, Any]]:
    return list(_bank(state).deliveries)


ROUTES = [
    bank_pay_page,
    bank_pay_submit,
    bank_payments,
    bank_execute,
    bank_redeliver,
    bank_gateway,
    bank_gateway_instructions,
    bank_gateway_faults,
    bank_events,
]


def install(app: Litestar, settings: Any, clock: Clock) -> BankState:
    """Add the bank to a mock app (state ``app.state.mock_bank``)."""
    bank = BankState(
        secret=getattr(settings, "bank_webhook_secret", ""),
        webhook_url=settings.api_public_base.rstrip("/") + "/api/v1/webhooks/bank",
        clock=clock,
        gateway_secret=getattr(settings, "bank_gateway_secret", ""),
        pay_link_secret=getattr(settings, "bank_pay_link_secret", ""),
    )
    for handler in ROUTES:
        app.register(handler)
    app.state.mock_bank = bank
    return bank
