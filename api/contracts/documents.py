"""The one way a signed document is made: :func:`freeze` renders a template's text from
typed terms and freezes both into the canonical document (format v2) that is hashed,
read by the signers, printed into the PDF and signed.

Contracts (``terms.ContractTerms``, a new home's or a resale's) and termination agreements
(``document_terms``) all come through here; the template decides which terms it takes.
Old documents are never rendered again: their text is inside what was signed, and every
template version stays in ``templates/`` so anyone can re-render it and compare.
"""

from __future__ import annotations

import msgspec

from api.contracts import templates, wording
from api.contracts.document_terms import TerminationTerms
from api.contracts.terms import ContractTerms
from api.core.errors import DomainError
from signing.canonical import CanonicalDocument, canonical_document

Terms = ContractTerms | TerminationTerms

_KINDS = {
    "contract": (ContractTerms, wording.contract_fields),
    "resale": (ContractTerms, wording.resale_fields),
    "termination": (TerminationTerms, wording.termination_fields),
}


def current_version(template_id: str) -> str:
    try:
        return templates.current_version(template_id)
    except KeyError:
        raise DomainError("template_unknown", "合同模板不存在。") from None


def render_text(template_id: str, terms: Terms, *, version: str | None = None) -> dict[str, object]:
    """The contract text a template renders from ``terms`` (what :func:`freeze` freezes)."""
    return _render(template_id, terms, version)[1]


def _render(
    template_id: str, terms: Terms, version: str | None
) -> tuple[templates.Template, dict[str, object]]:
    try:
        template = templates.template(template_id, version)
    except KeyError:
        raise DomainError("template_unknown", "合同模板不存在。") from None
    kind, fields_of = _KINDS[template.terms]
    if not isinstance(terms, kind):
        raise TypeError(f"template {template_id} renders {template.terms} terms, not {terms!r}")
    fields, flags = fields_of(terms)  # type: ignore[operator]  # paired in _KINDS
    try:
        return template, template.render(fields, flags)
    except templates.TemplateError as error:
        raise DomainError(
            "contract_text_incomplete",
            "合同条款缺少必要内容，无法生成合同文本，请补全后重试。",
            problem=str(error),
        ) from None


def freeze(template_id: str, terms: Terms, *, version: str | None = None) -> CanonicalDocument:
    """Render ``terms`` with the template (its ``version``, or the current one) and freeze
    the terms and the text together: the document every signature of it covers."""
    template, text = _render(template_id, terms, version)
    return canonical_document(
        template.id,
        template.version,
        msgspec.to_builtins(terms),
        text=text,
        template_sha256=template.sha256,
    )
