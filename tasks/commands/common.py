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
from tasks.config import LeaseConfig, get_storage


def date_arg(text: str) -> dt.date:
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
