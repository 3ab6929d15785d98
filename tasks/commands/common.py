"""Argument types and option groups the subcommands share."""
from __future__ import annotations

import argparse
import datetime as dt
import sys


def date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def range_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("--start", type=date_arg, required=True, help="first date (YYYY-MM-DD)")
    p.add_argument("--end", type=date_arg, required=True, help="last date, inclusive (YYYY-MM-DD)")
    return p


def scheduling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=1, help="luigi worker processes (default 1)")
    p.add_argument("--central", action="store_true",
                   help="use the central scheduler (luigid) from luigi.cfg instead of a local one")


def fail(message: str, code: int = 1) -> int:
    """Print `mlpipe: message` on stderr; returns `code` for the command to exit with."""
    print(f"mlpipe: {message}", file=sys.stderr)
    return code
