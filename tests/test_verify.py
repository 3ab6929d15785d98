"""`mlpipe verify` as users run it: it finds a flipped byte, a seal over missing data and a stray
temporary file in a completed root, `--repair` removes what they spoil, and a backfill then
restores the same outputs as the clean run."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.test_commands import BIN, env, land, run  # noqa: F401 - env is a fixture

# What a rerun writes differently by design: run summaries (one per run) and a candidate model's
# metadata (when it was trained and how long it took) with the seal that records it.
VARIES = ("runs/", "models/candidates/")


def files_of(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not str(p.relative_to(root)).startswith(VARIES)}


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.slow
def test_verify_finds_corruption_and_repair_then_backfill_restores_the_clean_outputs(env, tmp_path):  # noqa: F811
    land(env, "2013-01-01", "2013-01-06")
    assert run([BIN / "mlpipe", "run", "--date", "2013-01-06"], env).returncode == 0
    root = Path(env["MLPIPE_ROOT"])
    clean = files_of(root)
    proc = run([BIN / "mlpipe", "verify"], env)
    assert proc.returncode == 0 and "0 problem(s)" in proc.stdout, proc.stdout + proc.stderr

    raw = root / "raw/flights/date=2013-01-02/part-0.parquet"
    features = next(root.glob("features/flights/h=*/date=2013-01-03/part-0.parquet"))
    removed = root / "clean/flights/date=2013-01-04/part-0.parquet"
    temp = next(root.glob("predictions/flights/h=*/date=2013-01-06")) / ".part-0.parquet.tmp-0123456789ab"
    landing_before = {p: p.read_bytes() for p in (root / "landing").rglob("*") if p.is_file()}
    flip_a_byte(raw)
    flip_a_byte(features)
    removed.unlink()
    temp.write_bytes(b"PAR1 half a file")

    proc = run([BIN / "mlpipe", "verify"], env)
    assert proc.returncode == 60, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("corrupt") and str(raw) in line for line in lines), proc.stdout
    assert any(line.startswith("corrupt") and str(features) in line for line in lines), proc.stdout
    assert any(line.startswith("missing") and str(removed) in line for line in lines), proc.stdout
    assert any(line.startswith("temp") and str(temp) in line for line in lines), proc.stdout
    assert "4 problem(s)" in proc.stdout
    assert raw.exists() and temp.exists(), "verify without --repair changes nothing"

    proc = run([BIN / "mlpipe", "verify", "--repair"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not raw.exists() and not features.exists() and not temp.exists()
    assert {p: p.read_bytes() for p in landing_before} == landing_before, "the landing zone is never modified"

    proc = run([BIN / "mlpipe", "backfill", "--start", "2013-01-01", "--end", "2013-01-06"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    repaired = files_of(root)
    assert {name: repaired.get(name) == data for name, data in clean.items()} == {name: True for name in clean}
    assert run([BIN / "mlpipe", "verify"], env).returncode == 0


def test_verify_of_an_empty_root_checks_nothing_and_succeeds(env):  # noqa: F811
    proc = run([BIN / "mlpipe", "verify", "--start", "2013-01-01", "--end", "2013-01-02"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 problem(s)" in proc.stdout


def test_a_copy_keeps_its_seals_valid(tmp_path):
    """A root copied elsewhere verifies: seals record paths relative to their directory."""
    from pipeline import storage as st
    from pipeline import verify

    a = st.Storage(str(tmp_path / "a"))
    part = a.file(a.partition("features", "x", None), "part-0.parquet")
    flag = a.flag(a.partition("features", "x", None))
    st.seal(flag, {part: st.write_bytes(part, b"rows")})
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = st.Storage(str(tmp_path / "b"))
    assert verify.check_sealed(b, b.flag(b.partition("features", "x", None))) == []
    (tmp_path / "b/features/x/part-0.parquet").write_bytes(b"rowz")
    assert [p["kind"] for p in verify.check_sealed(b, b.flag(b.partition("features", "x", None)))] == ["corrupt"]
