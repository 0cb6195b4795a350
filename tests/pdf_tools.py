"""Poppler's command-line tools on a PDF, for tests: its text (``pdftotext``) and
``pdfsig``'s verdict on every signature, with the platform root trusted in a throwaway
NSS database (``certutil`` from Debian's libnss3-tools)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def poppler() -> bool:
    """Whether pdftotext, pdfsig and certutil are here. In CI (CI=true) they must be:
    .ci/run installs them, and a check that silently did not run is no check."""
    found = all(shutil.which(tool) for tool in ("pdftotext", "pdfsig", "certutil"))
    if not found and os.environ.get("CI") == "true":
        raise AssertionError("CI needs poppler-utils and libnss3-tools (see .ci/run)")
    return found


def pdf_text(pdf: bytes, directory: Path) -> str:
    path = directory / "contract.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True
    )
    return done.stdout


def trusting(root: x509.Certificate, directory: Path) -> str:
    """An NSS database that trusts ``root`` (for signatures: flags C)."""
    certutil = shutil.which("certutil")
    assert certutil is not None, "certutil (libnss3-tools) is needed to trust a root"
    database = directory / "nss"
    database.mkdir(exist_ok=True)
    pem = directory / "root.pem"
    pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    subprocess.run([certutil, "-N", "-d", f"sql:{database}", "--empty-password"], check=True)
    subprocess.run(
        [certutil, "-A", "-n", "root", "-t", "CT,C,C", "-i", str(pem), "-d", f"sql:{database}"],
        check=True,
    )
    return f"sql:{database}"


def pdfsig_report(pdf: bytes, root: x509.Certificate, directory: Path) -> list[dict[str, str]]:
    """pdfsig's view of every signature: field, validation and certificate lines."""
    path = directory / "signed.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        ["pdfsig", "-nssdir", trusting(root, directory), str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    found: list[dict[str, str]] = []
    for block in re.split(r"^Signature #\d+:$", done.stdout, flags=re.M)[1:]:
        fields = dict(re.findall(r"^[ \t]+- ([^:\n]+): (.*)$", block, flags=re.M))
        found.append(
            {
                "field": fields.get("Signature Field Name", ""),
                "validation": fields.get("Signature Validation", ""),
                "certificate": fields.get("Certificate Validation", ""),
                "type": fields.get("Signature Type", ""),
            }
        )
    return found
