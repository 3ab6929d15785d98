"""mlpipe runs a nightly ML pipeline on Luigi: it delivers landing files, runs, plans and
backfills the stages, checks what they stored and manages the models.

It parses the arguments and hands each subcommand to its module under tasks/commands; it holds no
pipeline logic of its own."""
from __future__ import annotations

import argparse
import os
import sys

import luigi.configuration

from pipeline import storage as st
from pipeline.hooks import DatasetError
from pipeline.layout import DATASET_MARKER
from pipeline.signing import SignatureError
from pipeline.storage import PROJECT_DIR
from pipeline.storage_errors import StorageError
from tasks.commands import integrity, models, reports, run, worker
from tasks.commands.common import fail, luigi_retcodes
from tasks.config import current_dataset, get_storage, keyring


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlpipe", description=" ".join(__doc__.split("\n\n")[0].split()),
        epilog="`mlpipe COMMAND --help` lists a command's options; README.md \"Exit codes\" lists what each "
               "exit code means.")
    parser.add_argument("--dataset", metavar="FILE",
                        help="the dataset description (TOML) to run; default: $MLPIPE_DATASET, else [dataset] path "
                             "in luigi.cfg, else the flights data")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands (mlpipe COMMAND --help for each)")
    for group in (run, worker, reports, models, integrity):
        group.add_parsers(sub)
    return parser


def use_project_config() -> None:
    """Read the project's luigi.cfg when the working directory has none (luigi reads ./luigi.cfg
    only), so `mlpipe` behaves the same from any directory; an overlay in LUIGI_CONFIG_PATH still
    wins, being read last. Without this, [retcode] would fall back to luigi's 0 for failures."""
    project_cfg = PROJECT_DIR / "luigi.cfg"
    if os.path.exists("luigi.cfg") or not project_cfg.exists():
        return
    luigi.configuration.add_config_path(str(project_cfg))
    overlay = os.environ.get("LUIGI_CONFIG_PATH")
    if overlay:
        luigi.configuration.add_config_path(overlay)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_project_config()
    before = os.environ.get("MLPIPE_DATASET")
    if args.dataset:  # luigi's worker processes inherit it
        os.environ["MLPIPE_DATASET"] = os.path.abspath(args.dataset)
    try:
        claim = args.command in ("run", "backfill")
        code = (check_dataset(False) or check_arguments(args) or (check_dataset(True) if claim else 0)
                or check_signing_key(args.command in ("run", "backfill", "worker", "models")) or _run(args))
    finally:
        if argv is not None:  # a call from Python (tests): leave the environment as it was
            _set_env("MLPIPE_DATASET", before)
    if argv is None:  # the `mlpipe` command itself, not a call from Python
        _exit_now(code)
    return code


def check_arguments(args) -> int:
    """A subcommand's own checks of its arguments (its `check`: the one-line problem or None),
    before anything runs or is written: exit 2 (USAGE) with the problem on stderr."""
    try:
        problem = getattr(args, "check", lambda args: None)(args)
    except StorageError as exc:
        return fail(str(exc), luigi_retcodes().scheduling_error)
    return fail(problem) if problem else 0


def _run(args) -> int:
    """The subcommand; storage that cannot be reached is reported in one line naming the path (exit
    35, scheduling_error, as when the lease cannot be taken), not as a traceback."""
    try:
        return args.func(args)
    except StorageError as exc:
        return fail(str(exc), luigi_retcodes().scheduling_error)


def _set_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def check_dataset(claim_root: bool) -> int:
    """Load the configured dataset description (a bad one is reported here, before anything
    runs: exit 2). With `claim_root`, the storage root is claimed for it: a root holds one
    dataset, whose name its dataset.json records, since model versions, deployments and the
    production alias are kept per root."""
    try:
        ds = current_dataset()
    except DatasetError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 2
    if not claim_root:
        return 0
    store = get_storage()
    marker = store.file(store.root, DATASET_MARKER)
    try:
        recorded = st.read_json(marker) if marker.exists() else None
        if recorded is None:
            st.write_json(marker, {"name": ds.name, "description": ds.source})
        elif recorded.get("name") != ds.name:
            print(f"mlpipe: the storage root {store.root} holds dataset '{recorded.get('name')}' (from "
                  f"{recorded.get('description')}), not '{ds.name}' (from {ds.source}): give each dataset its own "
                  "root ([storage] root in luigi.cfg or $MLPIPE_ROOT)", file=sys.stderr)
            return 2
    except (OSError, StorageError):
        pass  # storage unreachable: the run's own tasks fail and say so, as without the check
    return 0


def check_signing_key(needed: bool) -> int:
    """Read the model signing key (made on first use) before a command that signs or loads models
    runs: an unusable one ([signing] key_file, $MLPIPE_SIGNING_KEY) is reported here, exit 2."""
    if not needed:
        return 0
    try:
        keyring()
    except SignatureError as exc:
        print(f"mlpipe: {exc}", file=sys.stderr)
        return 2
    return 0


def _exit_now(code: int) -> None:
    """Exit with `code` once output is flushed, skipping interpreter teardown: pyarrow's thread
    pools can abort the process there ("terminate called without an active exception", exit 134)
    after the work has succeeded, which cron would report as a failed night."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
