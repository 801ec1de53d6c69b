"""`disparo --help` and every command's `--help` print their usage and exit 0."""

from __future__ import annotations

import argparse

import pytest

from deploy.cli import parser


def commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_the_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "failure %" in out
    for name in commands():
        assert f"    {name}" in out, name


@pytest.mark.parametrize("command", sorted(commands()))
def test_each_command_help_exits_0_with_its_usage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: disparo {command}")
