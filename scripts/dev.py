#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine that has only python3.

    python3 scripts/dev.py demo [wangqian demo options]   # run the demo
    python3 scripts/dev.py test [pytest options]          # lint, then run the tests
    python3 scripts/dev.py bench bench_http.py [options]  # a bench/ script (installs wrk)

Creates ./.venv on first use and (re)installs the project with its test extras whenever
pyproject.toml changes. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-pyproject-sha256"


def ensure_environment() -> None:
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == wanted:
        return
    print("installing wangqian and its dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-U", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test,bench]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


# What the project needs from Debian beyond Python: the CJK font contracts are typeset in
# (api.settings pdf_font; the service refuses to start without it) and, for the tests,
# poppler's tools and NSS's certutil, which check the signed PDFs as any reader would.
DEFAULT_PDF_FONT = "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"


def ensure_debian_packages(*, for_tests: bool, for_bench: bool = False) -> None:
    font = os.environ.get("WANGQIAN_PDF_FONT", DEFAULT_PDF_FONT)
    wanted = [] if Path(font).is_file() else ["fonts-noto-cjk"]
    # The HTTP benches measure from outside with wrk, a C load generator faster than the
    # server (a Python client would be the bottleneck and flatter the figures).
    if for_bench and not shutil.which("wrk"):
        wanted.append("wrk")
    if for_tests and not all(shutil.which(t) for t in ("pdftotext", "pdfsig", "certutil")):
        wanted += ["poppler-utils", "libnss3-tools"]
    apt = shutil.which("apt-get")
    if not wanted or apt is None or os.geteuid() != 0:
        if wanted:
            print(f"missing Debian packages: apt-get install {' '.join(wanted)}", file=sys.stderr)
        return
    print(f"installing {' '.join(wanted)} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=False, env=env)
    subprocess.run([apt, "install", "-y", "-qq", *wanted], check=False, env=env)


def _run(command: list[str]) -> int:
    """The command in the foreground. Ctrl-C reaches it as well (the terminal signals the
    whole process group), so it is left to shut down on its own; ``subprocess.call`` would
    kill it a quarter of a second later. A second Ctrl-C asks it to terminate."""
    with subprocess.Popen(command, cwd=ROOT) as child:
        interrupted = False
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                if interrupted:
                    child.terminate()
                interrupted = True


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "install", "bench"}:
        print(__doc__)
        return 2
    ensure_environment()
    command, rest = argv[0], argv[1:]
    if command == "install":
        return 0
    if command == "bench":
        ensure_debian_packages(for_tests=False, for_bench=True)
        if not rest:
            print("which bench? e.g. bench_http.py", file=sys.stderr)
            return 2
        script = ROOT / "bench" / rest[0]
        return _run([str(BIN / "python"), str(script), *rest[1:]])
    if command == "demo":
        ensure_debian_packages(for_tests=False)
        return _run([str(BIN / "wangqian"), "demo", *rest])
    ensure_debian_packages(for_tests=True)
    lint = _run([str(BIN / "ruff"), "check", "."])
    if lint != 0:
        return lint
    return _run([str(BIN / "python"), "-m", "pytest", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
