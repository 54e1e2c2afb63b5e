"""monitor deployed from its wheel (``pip install .``, an image, pipx): the migrations
ship inside the package, so a fresh install run from any directory creates its database
and polls; a broken installation is a clear error (exit 3), not a traceback."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from conftest import LocalServer, Route
from helpers import ROOT, Entry, rss, write_config
from setuptools import find_namespace_packages


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel built from it installed; the
    dependencies come from this venv (a .pth), so nothing is downloaded. Returns its
    ``monitor`` command."""
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info beside the sources, and
    # two test processes building at once would share them.
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("monitor", "alembic", "seeds"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp / "dist"), str(source)], check=True, cwd=tmp,
                   capture_output=True)
    [wheel] = (tmp / "dist").glob("monitor-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, cwd=tmp,
                   capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path"
                           "('purelib'))"], check=True, capture_output=True, text=True)
    # This venv's packages, after the new venv's own: a path line only, so this venv's
    # editable install of monitor (a .pth hook) is not loaded there.
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv / "bin" / "monitor"


def run(monitor: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(monitor), "--config", str(config), *args], cwd=config.parent,
                          capture_output=True, text=True, timeout=120)


def test_the_installed_wheel_creates_its_database_and_polls_from_any_directory(
        installed: Path, server: LocalServer, tmp_path: Path) -> None:
    server.routes["/f.rss"] = Route(body=rss("F", [Entry("One", None, guid="1",
                                                         content="A story told here. " * 20)]))
    work = tmp_path / "elsewhere"
    work.mkdir()
    config = write_config(work / "monitor.toml", db_url=f"sqlite:///{work}/data/m.db",
                          feeds=[{"name": "F", "url": server.url("/f.rss")}])
    # No [seeds] path: the corpus that ships in the wheel.
    config.write_text(re.sub(r"\[seeds\]\npath = .*\n", "", config.read_text()))
    where = subprocess.run([str(installed.parent / "python"), "-c",
                            "import monitor, monitor.db; print(monitor.__file__); "
                            "print(monitor.db.migrations_dir())"],
                           cwd=work, capture_output=True, text=True, check=True).stdout.split()
    assert all(not p.startswith(str(ROOT)) for p in where), where  # the wheel's, not ours
    shown = run(installed, config, "config", "show")
    assert shown.returncode == 0 and "/monitor/seeds" in shown.stdout, shown.stderr
    done = run(installed, config, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert "upgraded from empty to" in done.stdout
    done = run(installed, config, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "1 new" in done.stdout, done.stdout
    assert "seeds from " in done.stderr and "5 added" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_missing_migrations_are_a_clear_error(installed: Path, tmp_path: Path) -> None:
    python = installed.parent / "python"
    package = Path(subprocess.run([str(python), "-c", "import monitor; print(monitor.__file__)"],
                                  cwd=tmp_path, capture_output=True, text=True,
                                  check=True).stdout.strip()).parent
    env = package / "migrations" / "env.py"
    saved = env.read_bytes()
    config = write_config(tmp_path / "monitor.toml", db_url=f"sqlite:///{tmp_path}/m.db",
                          feeds=[])
    try:
        env.unlink()
        done = run(installed, config, "db", "upgrade")
        assert done.returncode == 3, done.stderr
        assert "the database migrations are missing from this installation" in done.stderr
        assert "Traceback" not in done.stderr
        env.write_bytes(b"raise ImportError('a broken migration environment')\n")
        done = run(installed, config, "db", "upgrade")
        assert done.returncode == 3 and "a broken migration environment" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        env.write_bytes(saved)


def test_every_package_is_in_the_wheel() -> None:
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {p for p in find_namespace_packages(str(ROOT), include=["monitor*"])
             if "__pycache__" not in p}
    assert found <= set(listed["packages"]), found - set(listed["packages"])
