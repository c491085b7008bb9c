"""The README documents every command, source type, notifier and configuration key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import COMMANDS, build_parser
from monitor.config import AlertConfig, MonitorSettings
from monitor.notifiers import TYPES as NOTIFIERS
from monitor.notifiers import notifier_class
from monitor.sources import TYPES as SOURCES
from monitor.sources import source_class

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def keys(cls: type) -> list[str]:
    return [
        f.metadata.get("key", f.name) for f in dataclasses.fields(cls) if f.init and f.name != "id"
    ]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_documented(command):
    assert f"`monitor {command}" in README


@pytest.mark.parametrize("type_name", sorted(SOURCES))
def test_every_source_type_and_its_keys_are_documented(type_name):
    assert f'type = "{type_name}"' in README
    for key in keys(source_class(type_name)):
        assert f"`{key}`" in README, f"sources of type {type_name}: key {key} not in README"


@pytest.mark.parametrize("type_name", sorted(NOTIFIERS))
def test_every_notifier_type_and_its_keys_are_documented(type_name):
    assert f'type = "{type_name}"' in README
    for key in keys(notifier_class(type_name)):
        assert f"`{key}`" in README, f"notifiers of type {type_name}: key {key} not in README"


@pytest.mark.parametrize("cls", [MonitorSettings, AlertConfig])
def test_monitor_and_alert_keys_are_documented(cls):
    for key in keys(cls):
        assert f"`{key}`" in README


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    for name, p in sub.choices.items():
        assert p.description, name


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys, contextlib, io\n"
        "from monitor.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        "heavy = [m for m in ('yt_dlp', 'apscheduler', 'feedparser', 'lxml', 'httpx', 'selectolax')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "", f"imported at --help: {out.stdout}"


@pytest.mark.parametrize(
    "name",
    ["source_failing", "source_silent", "source_recovered", "source_episodes", "failing_since",
     "episode_id", "reached"],
)  # fmt: skip
def test_source_health_payloads_and_tables_are_documented(name):
    assert f"`{name}`" in README or f'"{name}"' in README
