"""Argument types and option groups the subcommands share."""
from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import shlex
import sys

import luigi.retcodes

from pipeline import identifiers, lease
from pipeline.storage_errors import StorageError
from tasks.config import LeaseConfig, PipelineConfig, get_storage
from tasks.nightly import DATA_STAGES, RENAMED, STAGES


def date_arg(text: str) -> dt.date:
    """A calendar date written YYYY-MM-DD (pipeline.identifiers.check_date), refused by argparse otherwise."""
    try:
        return identifiers.check_date(text)
    except identifiers.IdentifierError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def version_arg(text: str) -> str:
    """A model version id (pipeline.identifiers.check_version), refused by argparse otherwise."""
    try:
        return identifiers.check_version(text)
    except identifiers.IdentifierError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def version_or_production_arg(text: str) -> str:
    """A model version id, or 'production' for the live one."""
    return text if text == "production" else version_arg(text)


def positive_int(text: str) -> int:
    """A whole number of at least 1 (workers, rows, trials), refused by argparse otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def stage_arg(choices: tuple[str, ...]):
    """An argparse type for `--stage`: one of `choices`. A stage's former name gets one line
    naming its new one, exit 2 (USAGE); anything else argparse's invalid choice."""
    def stage(text: str) -> str:
        new = RENAMED.get(text)
        if new is not None and text not in choices:
            raise SystemExit(fail(f"--stage {text} is now called {new}; stages: {', '.join(choices)}"))
        if text not in choices:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(choices)})")
        return text
    stage.__name__ = "stage"
    return stage


def range_command(sub, name: str, help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
    p.add_argument("--start", type=date_arg, required=True, metavar="YYYY-MM-DD", help="the first day of the range")
    p.add_argument("--end", type=date_arg, required=True, metavar="YYYY-MM-DD",
                   help="the last day of the range (inclusive)")
    return p


def scheduling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="luigi worker processes running tasks side by side (default 1)")
    p.add_argument("--central", action="store_true",
                   help="use the central scheduler (luigid) from luigi.cfg instead of a local one")


USAGE = 2  # the exit code of a mistake in the command line: nothing was run or written


def fail(message: str, code: int = USAGE) -> int:
    """Print `mlpipe: message` on stderr; returns `code` for the command to exit with."""
    print(f"mlpipe: {message}", file=sys.stderr)
    return code


def order_problem(start: dt.date, end: dt.date) -> str | None:
    """A range given last day first, as the line saying so; None when it is not."""
    return f"--start {start} is after --end {end}: give the first day of the range first" if start > end else None


def range_problem(start: dt.date, end: dt.date, stage: str | None = None, what: str = "--start") -> str | None:
    """What is wrong with a range of pipeline days [start, end] (for `stage`: the model stages run
    from the first deploy date on), as one line saying what to do; None when nothing is."""
    if start > end:
        return order_problem(start, end)
    cfg = PipelineConfig()
    if start < cfg.start_date:
        return (f"{what} {start} is before the pipeline's first day {cfg.start_date} ([pipeline] start_date in "
                f"luigi.cfg): use {cfg.start_date} or later, or move start_date back")
    if stage in STAGES and stage not in DATA_STAGES and end < cfg.first_deploy_date:
        return (f"--stage {stage} runs from the first deploy date {cfg.first_deploy_date} on ([pipeline] start_date "
                f"+ warmup_days), after --end {end}: end the range on {cfg.first_deploy_date} or later, or "
                f"pick a data stage ({', '.join(DATA_STAGES)})")
    return None


def luigi_retcodes():
    return luigi.retcodes.retcode()


def leased(wait: str, when=lambda args: True):
    """Run the decorated command holding the storage root's lease for its whole duration
    (pipeline.lease; [lease] ttl, and the wait setting named by `wait`), when `when(args)`. While
    another command holds it: exit 10 (luigi's already_running) with one message naming the holder;
    when the storage cannot be reached to take it: exit 35 (scheduling_error) naming the endpoint.
    luigi's worker processes are children of this one and need nothing of their own."""
    def wrap(command):
        @functools.wraps(command)
        def leased_command(args) -> int:
            if not when(args):
                return command(args)
            cfg, store = LeaseConfig(), get_storage()
            seconds = getattr(cfg, wait)

            def waiting(held: lease.LeaseHeld) -> None:
                print(f"mlpipe: {lease.describe(held.holder)} holds the storage root {store.root}; waiting up to "
                      f"{seconds:.0f} s ([lease] {wait}) for it to finish", file=sys.stderr)

            try:
                held = lease.acquire_waiting(store, _command_line(command), cfg.ttl, seconds, on_wait=waiting)
            except lease.LeaseHeld as exc:
                return fail(f"{exc}; [lease] {wait} in luigi.cfg sets how long a command waits for it",
                            luigi_retcodes().already_running)
            except (OSError, StorageError) as exc:
                return fail(f"cannot take the lease of the storage root {store.root}: {exc}",
                            luigi_retcodes().scheduling_error)
            held.start_renewing()
            try:
                return command(args)
            finally:
                _give_back(held, store.root)
        return leased_command
    return wrap


def _give_back(held: lease.Lease, root: str) -> None:
    """Release the lease; say so when it was lost meanwhile or cannot be released now."""
    try:
        released = held.release()
    except (OSError, StorageError) as exc:
        print(f"mlpipe: warning: could not release the lease of the storage root {root} ({exc}); it expires by "
              f"itself at {held.record['expires']}", file=sys.stderr)
        return
    if held.lost is not None:
        print(f"mlpipe: warning: the lease of the storage root {root} expired while this command ran and was taken "
              f"over by {lease.describe(held.lost)}: the two may have overlapped; check their outputs (raise "
              "[lease] ttl if renewals could not keep up)", file=sys.stderr)
    elif not released:
        print(f"mlpipe: warning: the lease of the storage root {root} could not be released now; it expires by "
              f"itself at {held.record['expires']}", file=sys.stderr)


def _command_line(command) -> str:
    """This process's command line for the lease record (the subcommand's name when called from Python)."""
    if os.path.basename(sys.argv[0]) == "mlpipe":
        return shlex.join(["mlpipe", *sys.argv[1:]])
    return "mlpipe " + command.__name__.removeprefix("cmd_").replace("_", " ")
