"""The command line: every subcommand is registered and answers --help."""
from __future__ import annotations

import subprocess
import sys

import pytest

from facevision.cli import COMMANDS, build_parser, main


def test_all_subcommands_registered() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"facevision {command}" in capsys.readouterr().out


def test_console_script_help_is_fast_and_light() -> None:
    """`facevision --help` must not import torch or Open3D (they take seconds to load)."""
    code = ("import sys; from facevision.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'open3d', 'mediapipe') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
