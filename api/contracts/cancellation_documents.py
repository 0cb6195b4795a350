"""Supporting documents of a cancellation (凭证, seed 001 5.5.2): a PDF or an image, at most
10 MB, kept with its SHA-256. What a file is comes from its bytes, and the name must say
the same: a ``.pdf`` that is a JPEG, or an image that is not one, is refused. The same file
uploaded twice is the same document (uploads are idempotent by content)."""

from __future__ import annotations

import hashlib
import unicodedata
import uuid
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy.ext.asyncio import AsyncSession

from api.contracts import schemas
from api.contracts.cancellation_reads import document_answers, readable
from api.contracts.models import (
    OPEN_CANCELLATION_STATUSES,
    CancellationDocument,
)
from api.contracts.queries import my_party, staff_actor
from api.core.errors import DomainError
from api.identity.principal import Principal
from signing.pii import mask_name

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_DOCUMENTS = 20
# The file types a regulator reads, by their first bytes, and the names they go by.
SIGNATURES = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}
EXTENSIONS = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
}


def sniff(content: bytes) -> str | None:
    """The content type the bytes are, or None for anything else."""
    for content_type, magics in SIGNATURES.items():
        if content.startswith(magics):
            return content_type
    return None


def clean_filename(raw: str) -> str:
    """The name as given, without a path or control characters, at most 200 characters."""
    name = PurePosixPath(raw.replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[-200:]


def checked_file(filename: str, declared_type: str, content: bytes) -> tuple[str, str]:
    """(clean name, content type) of an acceptable file, or the refusal saying why not."""
    name = clean_filename(filename)
    if not content:
        raise DomainError("document_empty", "上传的文件为空。")
    if len(content) > MAX_DOCUMENT_BYTES:
        raise DomainError(
            "document_too_large", "凭证文件不能超过 10 MB。", max_bytes=MAX_DOCUMENT_BYTES
        )
    actual = sniff(content)
    if actual is None:
        raise DomainError(
            "document_type_unsupported", "凭证须为 PDF 或 JPEG、PNG 图片。", filename=name
        )
    named = EXTENSIONS.get(PurePosixPath(name.lower()).suffix)
    declared = declared_type.split(";")[0].strip().lower()
    if named != actual or declared not in ("", "application/octet-stream", actual):
        raise DomainError(
            "document_type_mismatch",
            "文件名或声明的类型与文件内容不符，请上传原始文件。",
            filename=name,
            content_is=actual,
        )
    return name, actual


async def upload(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    *,
    filename: str,
    declared_type: str,
    content: bytes,
    now: datetime,
) -> schemas.CancellationDocumentAnswer:
    """A regulator, the company's staff or a buyer adds a document while the cancellation
    is not decided."""
    cancellation, order = await readable(session, principal, cancellation_id)
    name, content_type = checked_file(filename, declared_type, content)
    if cancellation.status not in OPEN_CANCELLATION_STATUSES:
        raise DomainError("cancellation_closed", "该注销申请已结束，不能再上传凭证。")
    digest = hashlib.sha256(content).hexdigest()
    existing = {d.sha256: d for d in await document_answers(session, cancellation.id)}
    if digest in existing:
        return existing[digest]
    if len(existing) >= MAX_DOCUMENTS:
        raise DomainError("documents_limit", f"每个注销申请最多上传 {MAX_DOCUMENTS} 份凭证。")
    if principal.staff_id is not None:
        uploader = await staff_actor(session, principal)
    else:
        uploader = mask_name((await my_party(session, principal, order)).name)
    session.add(
        CancellationDocument(
            cancellation_id=cancellation.id,
            filename=name,
            content_type=content_type,
            size_bytes=len(content),
            sha256=digest,
            content=content,
            uploaded_by=uploader,
            uploaded_at=now,
        )
    )
    await session.flush()
    return next(d for d in await document_answers(session, cancellation.id) if d.sha256 == digest)


async def download(
    session: AsyncSession,
    principal: Principal,
    cancellation_id: uuid.UUID,
    document_id: uuid.UUID,
) -> CancellationDocument:
    cancellation, _ = await readable(session, principal, cancellation_id)
    document = await session.get(CancellationDocument, document_id)
    if document is None or document.cancellation_id != cancellation.id:
        raise DomainError.not_found("凭证")
    return document
