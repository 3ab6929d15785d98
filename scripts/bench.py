"""Performance benchmarks: every timing is a ratio against a reference measured in the
same run on the same data; absolute seconds are printed beside it for information.

    scripts/bench.sh [--quick] [--only SCENARIOS] [--output FILE.json] [--workdir DIR] [--keep]

Each measurement runs in a fresh Python process (the luigi runs with a local scheduler and one
worker, so the task runs inside that process); its peak resident memory is that process's
(os.wait4). Data: `mlpipe land-synthetic`, seeded, so every run measures the same rows."""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SEED = 7
D0 = dt.date(2021, 6, 1)  # the measured day of the per-day scenarios

# A lighter model for the long-history scenario (both of its arms use it): it builds a year of
# nightly runs, and what it measures is how the nightly cost depends on history, not model size.
# Quick mode's per-day scenario uses it too.
LIGHT_MODEL = {"CandidateModel": {"max_iter": 30, "importance_repeats": 0}, "gate": {"bootstrap_samples": 200}}
# per_day_model: overlay of the per-day scenario's model chain ({}: luigi.cfg's model).
# build_workers: luigi workers of the untimed backfills that build a scenario's history (with more
# than one, luigi runs each task in a forked process that imports scikit-learn anew: on small data
# one worker is faster).
# noop_repeats: runs of the local no-op command (the best is the figure).
# one_build_call: the per-day scenario builds its history with one backfill (the nightly one when it
# trains, so the production model of the day before is there too; else the features one, which
# builds the clean partitions it reads) instead of clean and features backfills and a nightly run:
# the same outputs in fewer processes.
FULL = {
    "scales": [100_000, 1_000_000, 5_000_000], "history_days": 7, "window_days": 28, "holdout_days": 3,
    "train_rows": 1_000_000, "history_rows": 500, "short_history": 30, "long_history": 300, "year_days": 365,
    "nightly_repeats": 3, "backfill_days": 30, "backfill_rows": 100_000, "stage_repeats": 3,
    "noop_spans": [31, 91, 182, 365], "history_model": {"warmup_days": 14, "window_days": 28, "holdout_days": 3},
    "per_day_model": {}, "build_workers": 2, "noop_repeats": 3, "one_build_call": False,
}
# Quick mode only checks the script end to end (about 75 s on 2 idle cores, most of it the start-up
# of ~30 processes): the same scenarios and measurements on small data, few days, the light model
# and single runs. Its figures mean nothing.
QUICK = {
    "scales": [1_000, 2_000, 4_000], "history_days": 1, "window_days": 4, "holdout_days": 1,
    "train_rows": 2_000, "history_rows": 300, "short_history": 3, "long_history": 4, "year_days": 5,
    "nightly_repeats": 1, "backfill_days": 3, "backfill_rows": 1_000, "stage_repeats": 1,
    "noop_spans": [1, 3, 5], "history_model": {"warmup_days": 2, "window_days": 4, "holdout_days": 1},
    "per_day_model": LIGHT_MODEL, "build_workers": 1, "noop_repeats": 1, "one_build_call": True,
}


def day(d: dt.date, n: int) -> dt.date:
    return d + dt.timedelta(days=n)


# ---- running things --------------------------------------------------------------------------

class Env:
    """A storage root with its overlay config; commands and measurements run against it."""

    def __init__(self, base: Path, name: str, sections: dict, log):
        self.dir = base / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.root = self.dir / "root"
        self.config = self.dir / "overlay.cfg"
        sections = {"core": {"no_lock": "true", "log_level": "WARNING"}, "worker": {"keep_alive": "false"},
                    **sections}
        with open(self.config, "w") as out:
            for section, values in sections.items():
                out.write(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
        self.log = log

    @property
    def environ(self) -> dict:
        env = dict(os.environ, MLPIPE_ROOT=str(self.root), LUIGI_CONFIG_PATH=str(self.config))
        env.pop("MLPIPE_LANDING", None)
        return env

    def mlpipe(self, *args: str, check: bool = True) -> dict:
        return self.run([str(BIN / "mlpipe"), *args], check=check)

    def measure(self, kind: str, **params) -> dict:
        """Run `kind` (a function of this script) in a fresh process; its result plus wall
        seconds and peak RSS of that process."""
        result = self.run([sys.executable, __file__, "_measure", kind, json.dumps(params, default=str)])
        lines = [line for line in result["stdout"].splitlines() if line.startswith("{")]
        return {**json.loads(lines[-1]), "peak_rss_mb": result["peak_rss_mb"], "wall": result["seconds"]}

    def run(self, argv: list[str], check: bool = True) -> dict:
        started = time.perf_counter()
        with open(self.dir / "commands.log", "a") as log:
            log.write(f"$ {' '.join(argv)}\n")
            log.flush()
            proc = subprocess.Popen(argv, env=self.environ, stdout=subprocess.PIPE, stderr=log, text=True,
                                    cwd=PROJECT)
            stdout = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            log.write(stdout)
        seconds = time.perf_counter() - started
        if check and proc.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv[:4])}... exited {proc.returncode}; see {self.dir}/commands.log")
        return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "returncode": proc.returncode,
                "stdout": stdout}


def per_day_scenario(base: Path, p: dict, rows: int, log, train: bool) -> dict:
    """One day of `rows` flights with its history present: the data stages through luigi vs the
    I/O floor and the in-process reference; with `train`, the model chain of that day too."""
    h = p["history_days"]
    window = p["window_days"] if train else h + 1
    start = day(D0, -(window - 1))
    model = p["per_day_model"]
    sections = {**model, "pipeline": {"start_date": start, "warmup_days": window - 2 if train else window},
                "FeaturePartition": {"trailing_days": h},
                "CandidateModel": {**model.get("CandidateModel", {}), "window_days": p["window_days"],
                                   "holdout_days": p["holdout_days"]}}
    env = Env(base, f"rows_{rows}", sections, log)
    log(f"  landing {window} day(s) of {rows:,} flights")
    env.mlpipe("land-synthetic", "--start", str(start), "--end", str(D0), "--rows-per-day", str(rows),
               "--seed", str(SEED))
    workers = ("--workers", str(p["build_workers"]))
    if p["one_build_call"]:
        log("  building the history" + (f" and the nightly of {day(D0, -1)}" if train else "") + " (untimed)")
        env.mlpipe("backfill", *(() if train else ("--stage", "features")), "--start", str(start),
                   "--end", str(day(D0, -1)), *workers)
    else:
        log("  building the history (untimed)")
        env.mlpipe("backfill", "--stage", "validate", "--start", str(start), "--end", str(day(D0, -1)), *workers)
        if train:
            env.mlpipe("backfill", "--stage", "features", "--start", str(start), "--end", str(day(D0, -1)), *workers)
        else:
            env.mlpipe("backfill", "--stage", "features", "--start", str(start), "--end", str(start))  # + aircraft table
    log(f"  ingest + validate + features of {D0} through luigi ({p['stage_repeats']} runs)")
    stages = env.measure("stages", date=D0, repeats=p["stage_repeats"])
    log("  the references: I/O floor, in-process")
    floor = env.measure("floor", date=D0, repeats=p["stage_repeats"])
    inproc = env.measure("inprocess", date=D0, repeats=p["stage_repeats"])
    out = {"rows": rows, "history_days": h, "luigi_seconds": stages["seconds"],
           "luigi_first_run_seconds": stages["first_run_seconds"], "floor_seconds": floor["seconds"],
           "inprocess_seconds": inproc["seconds"], "peak_rss_mb": {"data stages": stages["peak_rss_mb"]},
           "inprocess_peak_rss_mb": inproc["peak_rss_mb"]}
    if train:
        if not p["one_build_call"]:
            log(f"  nightly of {day(D0, -1)} (untimed: the production model {D0} is evaluated against)")
            env.mlpipe("run", "--date", str(day(D0, -1)))
        log(f"  training {D0} through luigi, then a bare fit on the same rows")
        training = env.measure("training", date=D0)
        out["training"] = {k: v for k, v in training.items() if k not in ("wall",)}
        out["peak_rss_mb"]["CandidateModel"] = training["peak_rss_mb"]
        for task in ("ModelEvaluation", "Deployment", "Predictions", "ModelMonitoring"):
            log(f"  {task} {D0}")
            result = env.measure("task", task=task, date=D0)
            out["peak_rss_mb"][task] = result["peak_rss_mb"]
            out.setdefault("task_seconds", {})[task] = result["seconds"]
    return out


def history_scenario(base: Path, p: dict, log, s3: bool) -> dict:
    """Nightly runs with a short and a long history present, then no-op checks of the whole span
    (locally, and on S3 with the request count)."""
    short, long_, year = p["short_history"], p["long_history"], p["year_days"]
    start = D0
    model = p["history_model"]
    sections = {"pipeline": {"start_date": start, "warmup_days": model["warmup_days"]},
                "CandidateModel": {**LIGHT_MODEL["CandidateModel"], "window_days": model["window_days"],
                                   "holdout_days": model["holdout_days"]},
                "gate": LIGHT_MODEL["gate"]}
    env = Env(base, "history", sections, log)
    last = day(start, max(year, long_ + p["nightly_repeats"]) - 1)
    log(f"  landing {(last - start).days + 1} days of {p['history_rows']:,} flights")
    env.mlpipe("land-synthetic", "--start", str(start), "--end", str(last), "--rows-per-day", str(p["history_rows"]),
               "--seed", str(SEED))
    # The short arm's root is a copy of the history taken when it held `short` days; the long arm
    # goes on in the original. Their nights then alternate, so a machine that slows down or speeds
    # up during the long backfill moves both arms alike.
    envs, built = {}, day(start, -1)
    for name, present in (("short", short), ("long", long_)):
        first = day(start, present)
        if built < day(first, -1):
            log(f"  backfilling {present} days of history (untimed)")
            env.mlpipe("backfill", "--start", str(day(built, 1)), "--end", str(day(first, -1)),
                       "--workers", str(p["build_workers"]))
            built = day(first, -1)
        if name == "short":
            shutil.rmtree(base / "history_short", ignore_errors=True)
            shutil.copytree(env.dir, base / "history_short")
            envs[name] = Env(base, "history_short", sections, log)
        else:
            envs[name] = env
    arms = {name: {"history_days": present, "runs_seconds": []} for name, present in (("short", short), ("long", long_))}
    for i in range(p["nightly_repeats"]):
        for name, present in (("short", short), ("long", long_)):
            d = day(start, present + i)
            log(f"  mlpipe run --date {d} ({present + i} days of history present)")
            arms[name]["runs_seconds"].append(envs[name].mlpipe("run", "--date", str(d))["seconds"])
    for arm in arms.values():
        arm["median_seconds"] = statistics.median(arm["runs_seconds"])
    built = day(start, long_ + p["nightly_repeats"] - 1)
    if built < last:
        log(f"  backfilling to {last} (untimed)")
        env.mlpipe("backfill", "--start", str(day(built, 1)), "--end", str(last), "--workers", str(p["build_workers"]))
    span_days = (last - start).days + 1
    log(f"  no-op check of {span_days} days, local")
    cli = [env.mlpipe("backfill", "--start", str(start), "--end", str(last))["seconds"]
           for _ in range(p["noop_repeats"])]
    inproc = env.measure("noop", start=start, end=last)
    out = {"nightly": arms, "noop": {"days": span_days, "cli_seconds": min(cli), "check_seconds": inproc["seconds"]}}
    if s3:
        out["noop"]["s3"] = s3_noop(env, base, start, p["noop_spans"], log)
    return out


def s3_noop(env: Env, base: Path, start: dt.date, spans: list[int], log) -> list[dict]:
    sys.path.insert(0, str(PROJECT))
    from tests.servers import MotoServer

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(credentials)
    server = MotoServer().start()
    try:
        client = server.client()
        client.create_bucket(Bucket="bench")
        log(f"  copying the root to S3 (moto server at {server.endpoint})")
        files = 0
        for path in env.root.rglob("*"):
            if path.is_file() and "landing" not in path.relative_to(env.root).parts[:1]:
                client.upload_file(str(path), "bench", f"root/{path.relative_to(env.root)}")
                files += 1
        s3env = Env(base, "history_s3", {}, log)
        shutil.copy(env.config, s3env.config)
        with open(s3env.config, "a") as out:
            out.write(f"[s3]\nendpoint_url = {server.endpoint}\nregion_name = us-east-1\n")
        s3env.root = "s3://bench/root"
        results = []
        for span in spans:
            end = day(start, span - 1)
            r = s3env.measure("noop", start=start, end=end, s3_endpoint=server.endpoint)
            log(f"  no-op check of {span} days on S3: {r['requests']} requests, {r['seconds']:.2f} s")
            results.append({"days": span, "requests": r["requests"], "by_method": r["by_method"],
                            "seconds": r["seconds"], "files_in_root": files})
        return results
    finally:
        server.stop()


def _spin(n: int) -> float:
    started = time.perf_counter()
    x = 0
    for i in range(n):
        x += i
    return time.perf_counter() - started


def parallel_ceiling(n: int = 10_000_000) -> float:
    """How much faster this machine does two CPU-bound units of work in two processes than one
    after the other (2.0 on two free physical cores; less on busy or hyper-threaded virtual CPUs):
    about the most any 2-worker run can gain here. Both in the same pool of worker processes;
    median of 3."""
    import multiprocessing

    ratios = []
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for _ in range(3):
            started = time.perf_counter()
            pool.apply(_spin, (n,))
            pool.apply(_spin, (n,))
            one = time.perf_counter() - started
            started = time.perf_counter()
            pool.map(_spin, [n, n], chunksize=1)
            ratios.append(one / (time.perf_counter() - started))
    return statistics.median(ratios)


def backfill_scenario(base: Path, p: dict, log) -> dict:
    """The per-day data stages (ingest, validate, features) of a backfill: one process; two
    long-lived worker processes (`--processes 2`, through the backfill's own luigid); luigi's
    `--workers 2` (a fork per task) for comparison; and the machine's ceiling for this very work:
    two independent one-process backfills of the range at the same time, each into its own root
    (the throughput two processes get here when nothing is shared)."""
    n, rows = p["backfill_days"], p["backfill_rows"]
    start, end = D0, day(D0, n - 1)
    out = {"days": n, "rows_per_day": rows, "parallel_ceiling": parallel_ceiling()}
    log(f"  this machine runs a CPU-bound loop {out['parallel_ceiling']:.2f}x faster on 2 processes than on 1")
    backfill = ["backfill", "--stage", "features", "--start", str(start), "--end", str(end)]
    arms = {"one": [], "processes_2": ["--processes", "2"], "workers_2": ["--workers", "2"], "copy_a": [], "copy_b": []}
    envs, landing = {}, None
    for arm in arms:
        env = envs[arm] = Env(base, f"backfill_{arm}", {"pipeline": {"start_date": start}}, log)
        if landing is None:
            log(f"  landing {n} days of {rows:,} flights")
            env.mlpipe("land-synthetic", "--start", str(start), "--end", str(end), "--rows-per-day", str(rows),
                       "--seed", str(SEED))
            landing = env.root / "landing"
        else:
            shutil.copytree(landing, env.root / "landing")
    for arm in ("one", "processes_2", "workers_2"):
        log(f"  mlpipe backfill --stage features over {n} days {' '.join(arms[arm]) or '(one process)'}")
        out[f"{arm}_seconds"] = envs[arm].mlpipe(*backfill, *arms[arm])["seconds"]
    log("  two independent one-process backfills at the same time (the machine's ceiling for this work)")
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda arm: envs[arm].mlpipe(*backfill), ("copy_a", "copy_b")))
    out["two_copies_seconds"] = time.perf_counter() - started
    out["workload_ceiling"] = 2 * out["one_seconds"] / out["two_copies_seconds"]
    return out


def scheduler_scenario(base: Path, p: dict, log) -> dict:
    """luigid holding a year's backfill (p["year_days"] days) of the whole nightly pipeline: as the
    backfill submits it, one month at a time, and as one graph, for comparison (m_scheduler)."""
    start, end = D0, day(D0, p["year_days"] - 1)
    env = Env(base, "scheduler", {"pipeline": {"start_date": start}}, log)
    out = {}
    for arm, monthly in (("monthly", True), ("one_graph", False)):
        log(f"  luigid holding {start}..{end} {'one month at a time' if monthly else 'as one graph'}")
        out[arm] = env.measure("scheduler", start=start, end=end, monthly=monthly)
    return out


# ---- the report --------------------------------------------------------------------------------

def figures(results: dict, p: dict) -> list[dict]:
    """The table's rows, in a fixed order, for the scenarios the results hold (all, or --only's)."""
    rows = []

    def add(name, value, target, ok, detail):
        rows.append({"figure": name, "value": value, "target": target, "met": bool(ok), "detail": detail})

    scales = results["scales"]
    ref = next((s for s in scales if s["rows"] == p["scales"][1]), None)
    if ref is not None:
        r = ref["luigi_seconds"] / ref["floor_seconds"]
        add(f"ingest+validate+features, {ref['rows']:,} rows, luigi vs I/O floor", round(r, 2), "<= 4x", r <= 4,
            f"{ref['luigi_seconds']:.2f} s vs {ref['floor_seconds']:.2f} s")
        r = ref["luigi_seconds"] / ref["inprocess_seconds"]
        add("the same, luigi vs in-process pandas/pyarrow", round(r, 2), "<= 1.3x", r <= 1.3,
            f"{ref['luigi_seconds']:.2f} s vs {ref['inprocess_seconds']:.2f} s")
        t = ref["training"]
        r = t["seconds"] / t["bare_fit_seconds"]
        add(f"training step vs bare scikit-learn fit ({t['rows_trained']:,} rows)", round(r, 3), "<= 1.1x", r <= 1.1,
            f"{t['seconds']:.2f} s vs {t['bare_fit_seconds']:.2f} s; {t['rows_available']:,} rows in the window")
    if "history" in results:
        arms = results["history"]["nightly"]
        r = arms["long"]["median_seconds"] / arms["short"]["median_seconds"]
        add(f"nightly run, {arms['long']['history_days']} vs {arms['short']['history_days']} days of history",
            round(r, 3), "<= 1.15x", r <= 1.15,
            f"median {arms['long']['median_seconds']:.2f} s vs {arms['short']['median_seconds']:.2f} s")
    if "backfill" in results:
        b = results["backfill"]
        r, ceiling = b["one_seconds"] / b["processes_2_seconds"], b["workload_ceiling"]
        add(f"{b['days']}-day backfill of the data stages, 2 long-lived processes vs 1 ({b['rows_per_day']:,} rows/day)",
            round(r, 2), ">= 1.6x, or >= 90% of ceiling", r >= 1.6 or r >= 0.9 * ceiling,
            f"{b['processes_2_seconds']:.1f} s vs {b['one_seconds']:.1f} s: {r / ceiling:.0%} of this work's ceiling "
            f"({ceiling:.2f}x: two independent backfills at once); a CPU-bound loop: {b['parallel_ceiling']:.2f}x; "
            f"luigi's --workers 2: {b['one_seconds'] / b['workers_2_seconds']:.2f}x")
    if "scheduler" in results:
        sch = results["scheduler"]
        month, whole = sch["monthly"], sch["one_graph"]
        add(f"luigid during a {whole['days']}-day backfill (a month at a time): task-list p95",
            round(month["task_list_p95_ms"], 1), "< 500 ms", month["task_list_p95_ms"] < 500,
            f"{month['tasks']} tasks at once, luigid peak RSS {month['luigid_peak_rss_mb']:.0f} MB; as one graph: "
            f"{whole['tasks']} tasks, p95 {whole['task_list_p95_ms']:.0f} ms, {whole['luigid_peak_rss_mb']:.0f} MB")
    if "history" in results:
        noop = results["history"]["noop"]
        add(f"no-op check of {noop['days']} days, local (mlpipe backfill, whole command)", round(noop["cli_seconds"], 2),
            "< 2 s", noop["cli_seconds"] < 2, f"the check itself (in-process luigi.build): {noop['check_seconds']:.2f} s")
        if "s3" in noop:
            series = noop["s3"]
            counts = ", ".join(f"{s['days']} d: {s['requests']}" for s in series)
            last = series[-1]
            months = max(1, round(last["days"] / 30.4))
            add("no-op check on S3 (moto), requests by span", last["requests"],
                "grows with months, not days x stages", last["requests"] <= 4 * months + 8, counts)
    if ref is not None and len(scales) == len(p["scales"]):
        by_rows = {s["rows"]: s["luigi_seconds"] for s in scales}
        a, b_, c = p["scales"]
        r1, r2 = by_rows[b_] / by_rows[a], by_rows[c] / by_rows[b_]
        add(f"time per day at {a:,} / {b_:,} / {c:,} rows", round(r2, 2),
            f"{c / b_:g}x rows: <= {1.1 * c / b_:.2f}x", r2 <= 1.1 * c / b_,
            f"{by_rows[a]:.2f} / {by_rows[b_]:.2f} / {by_rows[c]:.2f} s "
            f"(x{b_ // a} rows: {r1:.2f}x time, x{c // b_} rows: {r2:.2f}x)")
    if ref is not None:
        peaks = ref["peak_rss_mb"]
        worst = max(peaks, key=peaks.get)
        add(f"peak RSS of any task at {ref['rows']:,} rows/day", round(peaks[worst]), "< 4096 MB",
            peaks[worst] < 4096, f"{worst}; " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()))
    return rows


def machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
        with open("/proc/meminfo") as fh:
            info["memory_gb"] = round(int(next(l for l in fh if l.startswith("MemTotal")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    return info


def table(rows: list[dict]) -> str:
    lines = [f"{'figure':<72} {'value':>9}  {'target':<22} {'met':<4} detail"]
    for r in rows:
        lines.append(f"{r['figure']:<72} {r['value']:>9}  {r['target']:<22} {'yes' if r['met'] else 'NO':<4} "
                     f"{r['detail']}")
    return "\n".join(lines)


def default_output(now: dt.datetime) -> Path:
    """Where the figures go without --output, kept: the storage root's reports/bench/ (a local root;
    for one on S3 or HDFS, the project's var/reports/bench/)."""
    sys.path.insert(0, str(PROJECT))
    from pipeline.storage import DEFAULT_ROOT, resolve_root
    from tasks.cli import use_project_config
    from tasks.config import StorageConfig

    use_project_config()
    root = resolve_root(StorageConfig().root)
    folder = Path(root) if "://" not in str(root) else DEFAULT_ROOT
    return folder / "reports" / "bench" / f"bench-{now.strftime('%Y%m%dT%H%M%SZ')}.json"


SCENARIOS = ("per_day", "backfill", "scheduler", "history")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench.sh", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data: checks the script in about a minute")
    parser.add_argument("--output", default=None, help="write the figures as JSON here (default: reports/bench/bench-TIME.json in the "
                        "storage root, kept)")
    parser.add_argument("--workdir", default=None, help="where the data goes (default: a new temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (moto server) no-op check")
    parser.add_argument("--long-history", type=int, default=None,
                        help="days of history of the long arm of the nightly figure (default 300; quick 4)")
    parser.add_argument("--span-days", type=int, default=None,
                        help="days the history root spans, the no-op check's range (default 365; quick 5)")
    parser.add_argument("--only", default=None, metavar="SCENARIOS",
                        help=f"run only these scenarios, comma-separated: {', '.join(SCENARIOS)} (default: all); "
                             "the table shows their figures")
    parser.add_argument("--resume", action="store_true",
                        help="keep the scenarios already in --output (each scenario's figures are ratios of "
                             "measurements made within it) and run the others")
    return parser


def main(argv: list[str]) -> int:
    if argv[:1] == ["_measure"]:
        from bench_measures import MEASURES

        print(json.dumps(MEASURES[argv[1]](**json.loads(argv[2]))))
        return 0
    args = _parser().parse_args(argv)
    p = dict(QUICK if args.quick else FULL)
    if args.long_history:
        p["long_history"] = args.long_history
    if args.span_days:
        p["year_days"] = args.span_days
        p["noop_spans"] = [d for d in p["noop_spans"] if d < args.span_days] + [args.span_days]
    base = Path(args.workdir or tempfile.mkdtemp(prefix="mlpipe-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

    output = Path(args.output) if args.output else default_output(dt.datetime.now(dt.timezone.utc))
    output.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"mode": "quick" if args.quick else "full", "machine": machine(),
                     "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "scales": []}
    if args.resume and output.exists():
        results = {**json.loads(output.read_text()), "resumed_at": results["started_at"]}
    done_rows = {s["rows"] for s in results["scales"]}

    def save() -> None:
        output.write_text(json.dumps(results, indent=2, default=str))

    only = set(SCENARIOS if args.only is None else args.only.split(","))
    if only - set(SCENARIOS):
        raise SystemExit(f"bench: --only {args.only}: the scenarios are {', '.join(SCENARIOS)}")
    try:
        for rows in (p["scales"] if "per_day" in only else []):
            if rows in done_rows:
                continue
            log(f"per-day scenario at {rows:,} rows a day")
            results["scales"].append(per_day_scenario(base, p, rows, log, train=rows == p["scales"][1]))
            save()
        results["scales"].sort(key=lambda s: s["rows"])
        if "backfill" not in results and "backfill" in only:
            log("backfill scenario")
            results["backfill"] = backfill_scenario(base, p, log)
            save()
        if "scheduler" not in results and "scheduler" in only:
            log("scheduler scenario")
            results["scheduler"] = scheduler_scenario(base, p, log)
            save()
        if "history" not in results and "history" in only:
            log("history scenario")
            results["history"] = history_scenario(base, p, log, s3=not args.no_s3)
        results["figures"] = figures(results, p)
        results["seconds"] = round(time.time() - started, 1)
        save()
        print(f"\nmlpipe benchmarks ({results['mode']} mode, {results['seconds']:.0f} s) on "
              f"{results['machine'].get('cpu', '?')}, {results['machine']['cpus']} CPUs, "
              f"{results['machine'].get('memory_gb', '?')} GB, Python {results['machine']['python']}\n")
        print(table(results["figures"]))
        print(f"\nfigures written to {output}")
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
