"""[compute] threads caps what a task's run() may use, in the process luigi runs it in.

Each case runs in a fresh interpreter: threadpoolctl caps only libraries already loaded, and
whether scikit-learn's OpenMP runtime is loaded yet is exactly what is under test (the task
modules import scikit-learn lazily, inside run())."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.test_commands import PROJECT

PROBE = textwrap.dedent('''
    import json, os, sys
    import luigi
    import pyarrow as pa
    from threadpoolctl import threadpool_info
    from tasks.threads import limit_threads

    assert "sklearn" not in sys.modules, "the probe must start before scikit-learn is imported"

    class Probe(luigi.Task):
        name = luigi.Parameter()

        def output(self):
            return luigi.LocalTarget(os.path.join(sys.argv[1], self.name + ".json"))

        @limit_threads
        def run(self):
            import sklearn.ensemble  # noqa: F401 - lazily, as the model tasks do
            pools = {i["internal_api"]: i["num_threads"] for i in threadpool_info()}
            with self.output().open("w") as out:
                json.dump({"openmp": pools.get("openmp"), "pyarrow": pa.cpu_count()}, out)

    class DataProbe(Probe):
        @limit_threads(openmp=False)
        def run(self):
            with self.output().open("w") as out:
                json.dump({"pyarrow": pa.cpu_count()}, out)

    workers = int(sys.argv[2])
    ok = luigi.build([Probe(name="model-a"), Probe(name="model-b"), DataProbe(name="data")],
                     local_scheduler=True, workers=workers, log_level="WARNING")
    print(json.dumps({"ok": ok, "cpus": pa.cpu_count()}))
''')


def probe(tmp_path, workers: int, threads: int) -> tuple[dict, dict]:
    config = tmp_path / "threads.cfg"
    config.write_text(f"[compute]\nthreads = {threads}\n[core]\nno_lock = true\n")
    out = tmp_path / f"w{workers}"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-c", PROBE, str(out), str(workers)], cwd=PROJECT, text=True,
                          capture_output=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "LUIGI_CONFIG_PATH": str(config),
                               "PYTHONPATH": str(PROJECT), "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ok"], proc.stderr[-3000:]
    return summary, {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_openmp_is_capped_although_scikit_learn_is_imported_inside_run(tmp_path):
    summary, seen = probe(tmp_path, workers=1, threads=1)
    assert seen["model-a"]["openmp"] == seen["model-b"]["openmp"] == 1
    # alone in its process (one worker) a task keeps pyarrow's whole pool
    assert seen["model-a"]["pyarrow"] == seen["data"]["pyarrow"] == summary["cpus"] == 2


def test_parallel_workers_cap_pyarrow_per_task(tmp_path):
    summary, seen = probe(tmp_path, workers=2, threads=1)
    assert {name: s["pyarrow"] for name, s in seen.items()} == {"model-a": 1, "model-b": 1, "data": 1}
    assert seen["model-a"]["openmp"] == 1
    assert summary["cpus"] == 2  # OMP_NUM_THREADS=2: the parent's pool is left as it was


@pytest.mark.slow
def test_parallel_workers_import_the_lazy_libraries_once_not_once_per_task(tmp_path):
    """luigi forks a process per task when it has several workers; what the tasks import inside
    run() is imported once, before the fork (tasks.threads.preload_for_workers), not in every child.
    Python's import-time log (one line per module imported, in whichever process) shows it."""
    from tests.test_commands import BIN, OVERLAY, land, run

    overlay = tmp_path / "overlay.cfg"
    overlay.write_text(OVERLAY)
    env = dict(os.environ, MLPIPE_ROOT=str(tmp_path / "root"), LUIGI_CONFIG_PATH=str(overlay))
    env.pop("MLPIPE_LANDING", None)
    land(env, "2013-01-01", "2013-01-05")
    proc = run([BIN / "mlpipe", "run", "--date", "2013-01-05", "--workers", "2"], {**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    for module in ("pyarrow.parquet", "threadpoolctl", "sklearn", "skops.io", "matplotlib.pyplot"):
        assert imported.count(module) == 1, (module, imported.count(module))
    assert len(list((tmp_path / "root" / "deployments").glob("**/date=2013-01-05/**/decision.json"))) == 1
