"""`mlpipe worker`: long-lived worker processes on this host that run the tasks luigid holds, for
the backfills and runs other hosts submit (tasks.workers)."""
from __future__ import annotations

import signal
import subprocess
import sys

from tasks import ops, workers
from tasks.commands.common import fail, luigi_retcodes, positive_int


def cmd_worker(args) -> int:
    """Long-lived worker processes taking work from luigid until it has none left (tasks.workers)."""
    url = args.scheduler_url or ops.scheduler_url()
    if not workers.listening(url, args.wait_for_luigid):
        return fail(f"the central scheduler (luigid) at {url} does not accept connections"
                    + (f" (waited {args.wait_for_luigid:g} s)" if args.wait_for_luigid else "")
                    + "; start it with `scripts/luigid.sh start`, or give its address with --scheduler-url or "
                    "[core] default-scheduler-host/-port in luigi.cfg", ops.SCHEDULER_UNREACHABLE)
    problem = None if args.scheduler_url else ops.scheduler_auth_problem()  # luigi would retry a 401 3 x 30 s
    if problem:
        return fail(problem, ops.SCHEDULER_UNREACHABLE)
    if args.processes == 1:
        return 0 if workers.run_assistant(url, args.idle) else luigi_retcodes().task_failed
    leaving = f"each leaves after {args.idle:g} s without work anywhere" if args.idle > 0 else "until stopped"
    print(f"mlpipe worker: {args.processes} worker processes taking work from luigid at {url}, {leaving}",
          file=sys.stderr)
    children = [subprocess.Popen(workers.worker_command(url, args.idle), stdin=subprocess.DEVNULL,
                                 preexec_fn=workers.die_with_parent) for _ in range(args.processes)]
    stopping = []

    def stop(signum, _frame):
        """The first SIGTERM/SIGINT/SIGUSR1: each process finishes its task at hand, then leaves
        (SIGUSR1, as luigi's workers take it); a second one ends them now."""
        if stopping:
            workers.stop_all(children, grace=0)
            return
        stopping.append(signum)
        print("mlpipe worker: stopping after the tasks at hand (signal again to stop now)", file=sys.stderr)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGUSR1)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(signum, stop)
    return max(child.wait() for child in children)


def add_parsers(sub) -> None:
    help = "long-lived worker processes that run the tasks luigid holds"
    p = sub.add_parser("worker", help=help, description="Start long-lived worker processes that take tasks from "
                       "the central scheduler (luigid), one at a time each, for the backfills and runs submitted "
                       "to it, until it has had no task pending or running for --idle seconds. The host needs the "
                       "project and the same luigi.cfg (storage root, dataset) as the submitting host. SIGTERM or "
                       "SIGUSR1: finish the tasks at hand, then leave.")
    p.add_argument("--processes", type=positive_int, default=1, metavar="N",
                   help="worker processes on this host (default 1); keep N x [compute] threads <= cores")
    p.add_argument("--idle", type=float, default=60.0, metavar="SECONDS",
                   help="leave after luigid has had no pending or running task for this long (default 60; 0: "
                        "stay until stopped)")
    p.add_argument("--scheduler-url", default=None, metavar="URL",
                   help="luigid's URL (default: [core] default-scheduler-url or -host/-port of luigi.cfg)")
    p.add_argument("--wait-for-luigid", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for luigid to accept connections before giving up with exit 45 "
                        "(default 0: at once)")
    p.set_defaults(func=cmd_worker)
