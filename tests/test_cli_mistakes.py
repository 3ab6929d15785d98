"""Every user mistake gets one line on stderr saying what is wrong and what to do, exit 2, no
traceback, and nothing written: run through the installed `mlpipe` as a user would."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.cli import build_parser

BIN = Path(sys.executable).parent

MISTAKES = [
    (["backfill", "--start", "2013-02-15", "--end", "2013-02-10"], "--start 2013-02-15 is after --end 2013-02-10"),
    (["plan", "--start", "2013-02-15", "--end", "2013-02-10"], "--start 2013-02-15 is after --end 2013-02-10"),
    (["plan", "--start", "2012-12-30", "--end", "2013-01-02"], "--start 2012-12-30 is before the pipeline's first day"),
    (["run", "--date", "2012-12-30"], "--date 2012-12-30 is before the pipeline's first day"),
    (["run", "--date", "2013-02-30"], "argument --date"),
    (["backfill", "--start", "2013-01-01", "--end", "2013-01-05", "--stage", "train"],
     "--stage train runs from the first deploy date"),
    (["backfill", "--start", "2013-01-01", "--end", "2013-01-02", "--stage", "clean"], "--stage clean is now called validate"),
    (["backfill", "--start", "2013-01-01", "--end", "2013-01-02", "--stage", "bogus"], "argument --stage: invalid choice"),
    (["backfill", "--start", "2013-01-01", "--end", "2013-01-02", "--workers", "0"], "argument --workers"),
    (["backfill", "--start", "2013-01-01", "--end", "2013-01-02", "--processes", "2", "--workers", "2"],
     "--processes 2 and --workers 2: pick one"),
    (["worker", "--processes", "0"], "argument --processes"),
    (["land-demo", "--start", "2014-01-01", "--end", "2014-01-02"], "the embedded flights data covers"),
    (["land-demo", "--start", "2013-01-05", "--end", "2013-01-01"], "--start 2013-01-05 is after --end 2013-01-01"),
    (["models", "show", "20130105-abcdef0123"], "model version 20130105-abcdef0123 is not published"),
    (["models", "which", "--date", "2012-06-01"], "--date 2012-06-01 is before the pipeline's first day"),
    (["run", "--date", "2013-01-05", "--summary", "/nonexistent-dir/s.json"], "--summary /nonexistent-dir/s.json"),
    (["--dataset", "/nonexistent/rides.toml", "plan", "--start", "2013-01-01", "--end", "2013-01-01"],
     "/nonexistent/rides.toml"),
    (["invalidate", "--start", "2013-01-01", "--end", "2013-01-02", "--stage", "ingest"],
     "--stage ingest cannot be invalidated"),
]


@pytest.mark.parametrize("argv,says", MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_a_mistake_is_one_line_exit_2_no_traceback_and_nothing_written(tmp_path, argv, says):
    env = dict(os.environ, MLPIPE_ROOT=str(tmp_path / "root"), LUIGI_CONFIG_PATH=str(tmp_path / "none.cfg"))
    proc = subprocess.run([BIN / "mlpipe", *argv], env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and says in lines[-1], proc.stderr
    assert len([line for line in lines if line.startswith("mlpipe")]) == 1, proc.stderr
    assert not (tmp_path / "root" / "runs").exists() and not (tmp_path / "root" / "landing").exists()


def _actions(parser, path=()):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield path, action


def test_help_describes_every_command_and_option():
    undescribed = [f"mlpipe {' '.join(path)} {action.option_strings or action.dest}"
                   for path, action in _actions(build_parser()) if not action.help]
    assert undescribed == []
