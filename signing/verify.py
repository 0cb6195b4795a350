"""Offline verification command for evidence bundles.

    python -m signing.verify BUNDLE.json --root ROOT.pem [--json]

Prints the report (plain text with Chinese and English labels, or JSON with ``--json``)
and exits 0 when every check holds, 1 when any fails or the files cannot be read.
Argument errors exit 2 (argparse). ``wangqian verify`` calls :func:`main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from signing.evidence import BundleFormatError, parse_bundle, verify_bundle


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


if __name__ == "__main__":
    sys.exit(main())
