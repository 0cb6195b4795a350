"""The offline verification command: python -m signing.verify BUNDLE --root ROOT."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from signing.ca import PlatformCA
from signing.verify import main


def _write(tmp_path: Path, ca: PlatformCA, bundle: dict[str, Any]) -> tuple[Path, Path]:
    bundle_path = tmp_path / "bundle.json"
    bundle_path.write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(ca.root_pem())
    return bundle_path, root_path


def test_a_good_bundle_exits_0(
    ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle_path, root_path = _write(tmp_path, ca, bundle)
    assert main([str(bundle_path), "--root", str(root_path)]) == 0
    out = capsys.readouterr().out
    assert "VALID 有效" in out
    assert "INVALID" not in out


def test_a_tampered_bundle_exits_1_and_says_what_broke(
    ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = copy.deepcopy(bundle)
    tampered["events"][3]["payload"]["type"] = "voided"
    bundle_path, root_path = _write(tmp_path, ca, tampered)
    assert main([str(bundle_path), "--root", str(root_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    failed = {c["name"] for c in report["checks"] if not c["ok"]}
    assert "events[3].hash" in failed


def test_unreadable_files_exit_1(
    ca: PlatformCA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(ca.root_pem())
    assert main([str(tmp_path / "missing.json"), "--root", str(root_path)]) == 1
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert main([str(tmp_path / "bad.json"), "--root", str(root_path)]) == 1
    assert "cannot read the bundle" in capsys.readouterr().err


def test_runs_as_a_module(ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path) -> None:
    bundle_path, root_path = _write(tmp_path, ca, bundle)
    done = subprocess.run(
        [sys.executable, "-m", "signing.verify", str(bundle_path), "--root", str(root_path)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Result 结论: VALID" in done.stdout


def test_the_wangqian_command_verifies_too(
    ca: PlatformCA, bundle: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main as wangqian

    bundle_path, root_path = _write(tmp_path, ca, bundle)
    assert wangqian(["verify", str(bundle_path), "--root", str(root_path)]) == 0
    assert "VALID 有效" in capsys.readouterr().out
    tampered = copy.deepcopy(bundle)
    tampered["events"][0]["payload"]["actor"] = "someone else"
    bundle_path, root_path = _write(tmp_path, ca, tampered)
    assert wangqian(["verify", str(bundle_path), "--root", str(root_path)]) == 1
    assert "INVALID" in capsys.readouterr().out
