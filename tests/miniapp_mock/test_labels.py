"""The mini program shows Chinese, never the API's codes: every order and cancellation
status, and every timeline event the API can record, has a label in
``miniapp_mock/pages/app.js``; and the verification page (合同查询) reads only fields the
public verification answer has.

The event types are collected from the API's source, so a new ``record_event(...)`` call
without a label fails here: string literals (also both arms of ``a if c else b``),
f-strings over a status (``f"cancellation_{cancellation.status.value}"``, expanded over
every ``CancellationStatus``), an order's status as the event (``order.status.value``,
expanded over every ``OrderStatus``), and a function's parameter passed on as the event
type (``_restore(..., event="cancellation_withdrawn")``), read at every call of it.
"""

from __future__ import annotations

import ast
import enum
import itertools
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import pytest

from api.contracts.models import CancellationStatus, OrderStatus, PaymentMethod
from api.contracts.schemas import TaxBearer
from api.contracts.terms import BuyerTerms, SealTerms, SellerTerms
from api.core.validators import IdType
from api.escrow.models import NoticeKind
from api.public.schemas import VerifiedUnit, VerifyAnswer

ROOT = Path(__file__).resolve().parents[2]
APP_JS = ROOT / "miniapp_mock" / "pages" / "app.js"
API = ROOT / "api"
CJK = re.compile(r"[\u4e00-\u9fff]")
# One entry of a flat object literal: `key: "value",` or `"key": "value",`, or a comment.
ENTRY = re.compile(
    r'\s*(?://[^\n]*|(?:(?P<key>\w+)|"(?P<quoted>[^"]+)")\s*:\s*"(?P<value>[^"]*)"\s*,?)'
)


def js_labels(name: str) -> dict[str, str]:
    """The flat object literal ``var NAME = {...};`` of app.js, every entry of it: the
    parse must consume the whole body, so an entry it cannot read fails instead of being
    skipped."""
    source = APP_JS.read_text(encoding="utf-8")
    found = re.search(rf"\n\s*var {name} = \{{(?P<body>.*?)\}};", source, re.S)
    assert found, f"app.js has no `var {name} = {{...}};`"
    body, at, labels = found["body"], 0, {}
    while body[at:].strip():
        entry = ENTRY.match(body, at)
        assert entry and entry.end() > at, f"cannot read {name} at: {body[at : at + 60]!r}"
        key = entry["key"] or entry["quoted"]
        if key:
            assert key not in labels, f"{name} labels {key!r} twice"
            labels[key] = entry["value"]
        at = entry.end()
    return labels


def values(kind: type[enum.Enum]) -> set[str]:
    return {member.value for member in kind}


def test_the_label_reader_reads_what_the_page_has() -> None:
    status = js_labels("STATUS")
    assert status["signed"] == "已签约" and status["cancelled"] == "已注销"
    assert js_labels("NOTICE_STATUS")["paid"] == "已缴清"  # several entries on one line
    with pytest.raises(AssertionError, match="has no"):
        js_labels("NO_SUCH_TABLE")


@pytest.mark.parametrize(
    ("table", "kind"),
    [
        ("STATUS", OrderStatus),
        ("CANCEL_STATUS", CancellationStatus),
        ("NOTICE_KIND", NoticeKind),
        ("ID_TYPE", IdType),
        ("PAYMENT", PaymentMethod),
        ("TAXES", TaxBearer),
    ],
)
def test_every_value_of_the_api_has_a_chinese_label(table: str, kind: type[enum.Enum]) -> None:
    labels = js_labels(table)
    assert set(labels) - values(kind) == set(), f"{table} labels values the API does not have"
    assert values(kind) - set(labels) == set(), f"{table} has no label for these"
    assert all(CJK.search(label) for label in labels.values()), labels


def test_every_party_role_has_a_label() -> None:
    roles = {terms.__struct_config__.tag for terms in (BuyerTerms, SellerTerms, SealTerms)}
    labels = js_labels("ROLE")
    assert set(labels) == roles
    assert all(CJK.search(label) for label in labels.values())


# ------------------------------------------------------------------------ timeline events


def _is_record_event(call: ast.Call) -> bool:
    func = call.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return name == "record_event"


def _event_argument(call: ast.Call) -> ast.expr:
    """record_event(session, order, event_type, *, actor, now, detail)."""
    for keyword in call.keywords:
        if keyword.arg == "event_type":
            return keyword.value
    assert len(call.args) >= 3, ast.unparse(call)
    return call.args[2]


def _status_values(node: ast.expr) -> set[str] | None:
    """``<order>.status.value`` or ``<cancellation>.status.value``: every value the status
    may have, by the enum its owner's name says."""
    if not (
        isinstance(node, ast.Attribute)
        and node.attr == "value"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "status"
    ):
        return None
    owner = ast.unparse(node.value.value)
    if "cancellation" in owner:
        return values(CancellationStatus)
    if "order" in owner:
        return values(OrderStatus)
    return None


def _literal_types(node: ast.expr) -> set[str] | None:
    """The event types an expression may give, or None when it is not one this reader
    knows (a variable: see the relays)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _literal_types(node.body), _literal_types(node.orelse)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.JoinedStr):
        pieces: list[set[str]] = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                pieces.append({str(part.value)})
            elif isinstance(part, ast.FormattedValue):
                expanded = _status_values(part.value)
                if expanded is None:
                    return None
                pieces.append(expanded)
        return {"".join(combo) for combo in itertools.product(*pieces)}
    return _status_values(node)


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _calls(node: ast.AST) -> Iterator[ast.Call]:
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            yield child


def _arguments_named(
    trees: Iterable[ast.Module], function: str, parameter: ast.arg, position: int
) -> Iterator[ast.expr]:
    """What every call of ``function`` passes as ``parameter``."""
    for tree in trees:
        for call in _calls(tree):
            func = call.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name != function:
                continue
            given = [k.value for k in call.keywords if k.arg == parameter.arg]
            if not given and position < len(call.args):
                given = [call.args[position]]
            assert given, f"{ast.unparse(call)} passes no {parameter.arg}"
            yield given[0]


def recorded_event_types() -> set[str]:
    trees = [
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for path in sorted(API.rglob("*.py"))
        if "migrations" not in path.parts
    ]
    found: set[str] = set()
    for tree in trees:
        for function in _functions(tree):
            for call in _calls(function):
                if not _is_record_event(call) or function.name == "record_event":
                    continue
                argument = _event_argument(call)
                types = _literal_types(argument)
                if types is not None:
                    found |= types
                    continue
                # A parameter passed on (a relay): read what each caller gives it.
                parameters = [*function.args.posonlyargs, *function.args.args]
                every = [*parameters, *function.args.kwonlyargs]
                named = [
                    p for p in every if isinstance(argument, ast.Name) and p.arg == argument.id
                ]
                assert named, (
                    f"cannot tell the event type of {ast.unparse(call)} in {function.name}"
                )
                position = parameters.index(named[0]) if named[0] in parameters else 10**6
                for given in _arguments_named(trees, function.name, named[0], position):
                    relayed = _literal_types(given)
                    assert relayed is not None, f"cannot read {ast.unparse(given)}"
                    found |= relayed
    return found


def test_the_event_reader_finds_every_kind_of_call() -> None:
    events = recorded_event_types()
    assert {"created", "issued", "signed", "submitted", "transfer_registered"} <= events
    assert {"draft_discarded", "expired", "personal_data_purged"} <= events  # if/else, plain
    assert {"cancellation_awaiting_submit", "cancellation_awaiting_seal"} <= events  # f-string
    assert {"awaiting_submit", "awaiting_seal"} <= events  # order.status.value
    assert {"cancellation_withdrawn", "cancellation_rejected"} <= events  # through _restore


def test_every_recorded_event_has_a_chinese_label() -> None:
    labels = js_labels("EVENT")
    events = recorded_event_types()
    assert events - set(labels) == set(), "timeline events with no label in app.js EVENT"
    assert set(labels) - events == set(), "EVENT labels events the API never records"
    assert all(CJK.search(label) for label in labels.values())
    resale = js_labels("RESALE_EVENT")
    assert set(resale) <= events and all(CJK.search(label) for label in resale.values())


# ------------------------------------------------------------------------ 合同查询


def _verify_page() -> str:
    source = APP_JS.read_text(encoding="utf-8")
    start = source.index("pages.verify = function")
    return source[start : source.index("\n  };\n", start)]


def _dict_keys(keyword: str) -> set[str]:
    """The keys of the dicts ``verify_contract`` puts in ``VerifyAnswer(<keyword>=[...])``."""
    tree = ast.parse((API / "public" / "verification.py").read_text(encoding="utf-8"))
    for call in _calls(tree):
        if getattr(call.func, "id", None) != "VerifyAnswer":
            continue
        for given in call.keywords:
            if given.arg == keyword:
                assert isinstance(given.value, ast.ListComp), ast.unparse(given.value)
                assert isinstance(given.value.elt, ast.Dict)
                return {key.value for key in given.value.elt.keys if isinstance(key, ast.Constant)}
    raise AssertionError(f"VerifyAnswer({keyword}=...) not found")


def test_the_verification_page_reads_only_what_the_api_answers() -> None:
    page = _verify_page()
    answer = {field.name for field in msgspec.structs.fields(VerifyAnswer)}
    unit = {field.name for field in msgspec.structs.fields(VerifiedUnit)}
    read = set(re.findall(r"\br\.(\w+)", page))
    read_unit = set(re.findall(r"\br\.unit\.(\w+)", page))
    read_party = set(re.findall(r"\bparty\.(\w+)", page))
    read_signature = set(re.findall(r"\bsig\.(\w+)", page))
    assert {"genuine", "contract_number", "status", "unit", "parties"} <= read  # not vacuous
    assert read - answer == set(), "the page reads fields VerifyAnswer does not have"
    assert read_unit and read_unit - unit == set(), "unit fields VerifiedUnit does not have"
    assert read_party and read_party - _dict_keys("parties") == set()
    assert read_signature - _dict_keys("signatures") == set()
