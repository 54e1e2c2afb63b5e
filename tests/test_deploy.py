"""The systemd unit: valid for systemd, restarts for ever, stops gracefully, hardened."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT

UNIT = ROOT / "deploy" / "monitor.service"


def options(section: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    current = None
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("["):
            current = line.strip("[]")
        elif line and not line.startswith("#") and current == section:
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_the_unit_restarts_stops_gracefully_and_is_hardened() -> None:
    service = options("Service")
    assert service["ExecStart"] == ["/opt/monitor/.venv/bin/monitor run"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # hot reload
    assert service["Restart"] == ["always"] and options("Unit")["StartLimitIntervalSec"] == ["0"]
    assert service["RestartPreventExitStatus"] == ["2"]  # a bad config waits for an edit
    # systemd waits longer than the daemon's own shutdown bound (20 s) before SIGKILL.
    assert service["KillSignal"] == ["SIGTERM"] and int(service["TimeoutStopSec"][0]) > 20
    assert service["KillMode"] == ["mixed"]  # the daemon stops its workers itself
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                "ProtectKernelTunables", "RestrictNamespaces", "LockPersonality"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"] and service["CapabilityBoundingSet"] == [""]
    assert service["User"] == ["monitor"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists: point it at a program this machine has.
    unit = tmp_path / "monitor.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(
        "/opt/monitor/.venv/bin/monitor", "/bin/true"), encoding="utf-8")
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if "monitor.service" in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr
