"""scripts/bench.sh --quick runs end to end and writes well-formed figures, so the benchmark
script cannot rot. Timings are not asserted (they are the benchmark's to report, not a test's):
only that each figure is the ratio of the measurements recorded beside it."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.test_commands import PROJECT

pytestmark = pytest.mark.slow


def test_quick_benchmark_writes_every_figure(tmp_path):
    output = tmp_path / "figures.json"
    proc = subprocess.run(["bash", str(PROJECT / "scripts" / "bench.sh"), "--quick", "--output", str(output),
                           "--workdir", str(tmp_path / "work")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    results = json.loads(output.read_text())
    assert results["mode"] == "quick" and results["machine"]["cpus"] >= 1
    assert len(results["figures"]) == 10, [f["figure"] for f in results["figures"]]
    for figure in results["figures"]:
        assert isinstance(figure["value"], (int, float)) and figure["value"] > 0, figure
        assert isinstance(figure["met"], bool) and figure["target"] and figure["detail"], figure
        assert figure["figure"] in proc.stdout, "every figure is in the printed table"

    scales = results["scales"]
    assert [s["rows"] for s in scales] == [1_000, 2_000, 4_000]
    middle = scales[1]
    first = results["figures"][0]
    assert first["value"] == round(middle["luigi_seconds"] / middle["floor_seconds"], 2)
    training = middle["training"]
    assert training["bare_rows"] == training["rows_trained"] > 0
    assert training["rows_available"] >= training["rows_trained"]
    assert set(middle["peak_rss_mb"]) == {"data stages", "CandidateModel", "ModelEvaluation", "Deployment",
                                          "Predictions", "ModelMonitoring"}
    assert all(v > 50 for v in middle["peak_rss_mb"].values())
    s3 = results["history"]["noop"]["s3"]
    assert [s["days"] for s in s3] == [1, 3, 5] and all(s["requests"] > 0 for s in s3)
    nightly = results["history"]["nightly"]
    assert nightly["long"]["history_days"] > nightly["short"]["history_days"]
    backfill = results["backfill"]
    assert all(backfill[f"{arm}_seconds"] > 0 for arm in ("one", "processes_2", "workers_2", "two_copies"))
    assert 0.5 < backfill["parallel_ceiling"] < 2.5  # two units of work over two processes
    assert backfill["workload_ceiling"] == 2 * backfill["one_seconds"] / backfill["two_copies_seconds"]
    scheduler = results["scheduler"]
    assert scheduler["one_graph"]["tasks"] >= scheduler["monthly"]["tasks"] > 0
    luigid = next(f for f in results["figures"] if f["figure"].startswith("luigid during"))
    assert luigid["value"] == round(scheduler["monthly"]["task_list_p95_ms"], 1)
    parallel = next(f for f in results["figures"] if "long-lived processes" in f["figure"])
    assert parallel["value"] == round(backfill["one_seconds"] / backfill["processes_2_seconds"], 2)
    assert f"figures written to {output}" in proc.stdout


def test_without_output_the_figures_are_kept_in_the_storage_roots_reports(tmp_path, monkeypatch):
    import datetime as dt

    monkeypatch.setenv("MLPIPE_ROOT", str(tmp_path / "root"))
    monkeypatch.syspath_prepend(str(PROJECT / "scripts"))
    from bench import default_output

    path = default_output(dt.datetime(2026, 12, 4, 19, 30, tzinfo=dt.timezone.utc))
    assert path == tmp_path / "root" / "reports" / "bench" / "bench-20261204T193000Z.json"
