"""Offline verification commands: evidence bundles, contract QR codes and contract PDFs.

    python -m signing.verify BUNDLE.json --root ROOT.pem [--json]
    wangqian verify-qr "QR TEXT" --root ROOT.pem --certs CERTS.pem [--document-hash HEX]
    wangqian verify-pdf CONTRACT.pdf --root ROOT.pem

Each prints its checks and exits 0 when every check holds, 1 when any fails or a file
cannot be read; argument errors exit 2 (argparse). ``wangqian verify``, ``verify-qr`` and
``verify-pdf`` call :func:`main`, :func:`main_qr` and :func:`main_pdf`. ``CERTS.pem`` is
the platform's published certificates (``GET /api/v1/public/certificates``), each
checked against the root.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509

from signing.certificates import load_root_certificate
from signing.checks import Check
from signing.evidence_verify import BundleFormatError, parse_bundle, verify_bundle
from signing.offline_qr import verify_token
from signing.pdf import verify_pdf_sync


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m signing.verify",
        description="Verify a Wangqian evidence bundle offline (核验网签合同证据包).",
    )
    parser.add_argument("bundle", type=Path, help="the evidence bundle JSON file")
    parser.add_argument(
        "--root", type=Path, required=True, help="the platform root certificate (PEM or DER)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        root = arguments.root.read_bytes()
    except OSError as error:
        print(f"cannot read the root certificate 无法读取根证书: {error}", file=sys.stderr)
        return 1
    try:
        bundle = parse_bundle(arguments.bundle.read_bytes())
    except (OSError, BundleFormatError) as error:
        print(f"cannot read the bundle 无法读取证据包: {error}", file=sys.stderr)
        return 1
    report = verify_bundle(bundle, root)
    if arguments.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(report.to_text())
    return 0 if report.ok else 1


def _print_checks(title: str, checks: Sequence[Check]) -> int:
    print(title)
    for check in checks:
        print(f"[{' OK ' if check.ok else 'FAIL'}] {check.name}: {check.reason}")
    ok = bool(checks) and all(check.ok for check in checks)
    print(f"Result 结论: {'VALID 有效' if ok else 'INVALID 无效'}")
    return 0 if ok else 1


def _root(path: Path) -> x509.Certificate | None:
    try:
        return load_root_certificate(path.read_bytes())
    except (OSError, ValueError) as error:
        print(f"cannot read the root certificate 无法读取根证书: {error}", file=sys.stderr)
        return None


def main_qr(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wangqian verify-qr",
        description="Verify a contract's QR code offline (核验合同二维码).",
    )
    parser.add_argument("code", help="the QR code's text (the link), or its token")
    parser.add_argument("--root", type=Path, required=True, help="the platform root (PEM)")
    parser.add_argument(
        "--certs", type=Path, required=True, help="the platform's published certificates (PEM)"
    )
    parser.add_argument("--document-hash", help="the contract document this code must be for")
    arguments = parser.parse_args(argv)
    root = _root(arguments.root)
    try:
        certificates = x509.load_pem_x509_certificates(arguments.certs.read_bytes())
    except (OSError, ValueError) as error:
        print(f"cannot read the certificates 无法读取证书: {error}", file=sys.stderr)
        return 1
    if root is None:
        return 1
    result = verify_token(arguments.code, root, certificates, document_hash=arguments.document_hash)
    payload = result.payload
    title = "Contract QR code 合同二维码" + (
        f"\n  contract 合同编号: {payload.contract_number}\n  document 文件摘要: "
        f"{payload.document_hash}\n  status at signing 签约时状态: {payload.status}\n"
        f"  signed 签约时间: {payload.signed_at.isoformat()}"
        if payload is not None
        else ""
    )
    return _print_checks(title, result.checks)


def main_pdf(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wangqian verify-pdf", description="Verify a signed contract PDF (核验合同 PDF)."
    )
    parser.add_argument("pdf", type=Path, help="the contract PDF")
    parser.add_argument("--root", type=Path, required=True, help="the platform root (PEM)")
    arguments = parser.parse_args(argv)
    root = _root(arguments.root)
    try:
        data = arguments.pdf.read_bytes()
    except OSError as error:
        print(f"cannot read the PDF 无法读取文件: {error}", file=sys.stderr)
        return 1
    if root is None:
        return 1
    report = verify_pdf_sync(data, root)
    return _print_checks(f"Contract PDF 合同文件: {arguments.pdf.name}", report.checks)


if __name__ == "__main__":
    sys.exit(main())
