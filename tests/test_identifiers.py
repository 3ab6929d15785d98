"""Identifiers that reach storage paths, through the real commands: a model version, dataset or
table name, stage or date that could name another folder is refused before anything is read or
written (`mlpipe`: exit 2 and one line naming it; `luigi --module tasks`: before scheduling), and
the files under the test's directory are the same before and after."""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from pipeline import identifiers, layout, signing
from pipeline import storage as st
from pipeline.hashing import json_bytes, sha256_bytes
from tasks.cli import main
from tests.pipeline.test_identifiers import rides_copy
from tests.test_commands import BIN, env, run  # noqa: F401 - env is a fixture


# Path traversal, absolute paths, separators, nothing, a NUL byte, a very long value, unicode
# lookalikes (Cyrillic, fullwidth, a non-ASCII hyphen).
NOT_VERSIONS = ["../x", "../../../x", "/tmp/abs", "a/b", "..", "", "20130105-abc\0", "20130105-" + "a" * 5000,
                "20130105-аbc", "２０１３０１０５-abc", "20130105‐abc", "20130105-abc/../../x"]
NOT_DATES = ["../x", "/tmp/abs", "a/b", "..", "", "2013-01-05\0", "2" * 5000, "２０１３-01-05",
             "20130105", "2013-W01-1", "2013-1-5", "2013-02-30"]


def files_under(path: Path) -> list[str]:
    """Every file and directory below `path`, as sorted relative paths."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def refused(capsys, argv: list[str]) -> str:
    """Run `mlpipe argv` in this process, which argparse must refuse (exit 2); its one error line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if not line.startswith(("usage:", " "))]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("bad", NOT_VERSIONS)
@pytest.mark.parametrize("command", [["models", "show", "{v}"], ["models", "promote", "{v}", "--reason", "x"],
                                     ["models", "rollback", "--to", "{v}", "--reason", "x"],
                                     ["models", "sign", "{v}"]], ids=["show", "promote", "rollback", "sign"])
def test_a_version_that_is_not_an_id_is_refused_before_anything_is_read_or_written(root, tmp_path, capsys, command,
                                                                                 bad):
    before = files_under(tmp_path)
    line = refused(capsys, [a.replace("{v}", bad) for a in command])
    assert line.startswith(f"mlpipe models {command[1]}: error: argument ")
    assert f"model version {identifiers.shown(bad)} is refused: it must be {identifiers.VERSION_RULE}" in line
    assert files_under(tmp_path) == before == []


def test_show_still_takes_production(root, capsys):
    assert main(["models", "show", "production"]) == 3  # NOT_RUN_YET: nothing deployed yet
    assert capsys.readouterr().err == ("mlpipe: no model is in production yet: the first is deployed by `mlpipe run` "
                                       "on the first deploy date\n")


def plant_signed_version(directory: Path, version: str) -> None:
    """What an attacker with the signing key leaves outside the registry: a sealed version
    directory whose signed manifest names `version`, a path that leads there."""
    store = st.Storage(str(directory.parent))
    model, written = b"not a model", {}
    target = store.file(str(directory), layout.MODEL_FILE)
    written[target] = st.write_bytes(target, model)
    manifest = json_bytes({"version": version, "files": {layout.MODEL_FILE: sha256_bytes(model)},
                           "model_sha256": sha256_bytes(model)})
    target = store.file(str(directory), layout.MANIFEST_FILE)
    written[target] = st.write_bytes(target, manifest)
    sig = store.file(str(directory), layout.signature_file(layout.MANIFEST_FILE))
    key = signing.key_from_text(os.environ["MLPIPE_SIGNING_KEY"], "the tests' key (tests/conftest.py)")
    written[sig] = st.write_bytes(sig, signing.sign(manifest, key, {"user": "attacker"}))
    st.seal(store.flag(str(directory)), written)


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_promote_to_a_signed_version_outside_the_registry_is_refused_and_moves_nothing(root, tmp_path, capsys,
                                                                                      where):
    """The attack: a version "id" that is a path to a signed version directory elsewhere. Without
    the check, promote made it production and wrote its history record outside the history."""
    planted = tmp_path / "anything" if where == "absolute" else tmp_path / "x"
    version = str(planted) if where == "absolute" else "../../../x"  # {root}/registry/versions/../../../x
    plant_signed_version(planted, version)
    (root / layout.REGISTRY / layout.VERSIONS).mkdir(parents=True)  # a registry in use: `..` resolves from it
    before = files_under(tmp_path)
    line = refused(capsys, ["models", "promote", version, "--reason", "x"])
    assert f"model version {version!r} is refused" in line
    assert files_under(tmp_path) == before
    assert not (root / layout.REGISTRY / layout.ALIAS_FILE).exists()


def test_the_mlpipe_command_refuses_a_path_as_version_with_one_line(env, tmp_path):
    root = Path(env["MLPIPE_ROOT"])
    before = files_under(tmp_path)
    for args in (["models", "promote", "/tmp/anything", "--reason", "x"], ["models", "show", "../../../x"],
                 ["models", "rollback", "--to", "../x", "--reason", "x"], ["models", "which", "--date", "2013-W01-1"]):
        proc = run([BIN / "mlpipe", *args], env)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        lines = proc.stderr.splitlines()
        assert lines[0].startswith("usage: mlpipe models") and len(lines) == 2, proc.stderr
        assert lines[1].startswith(f"mlpipe models {args[1]}: error: argument "), proc.stderr
        assert "is refused: it must be" in lines[1], proc.stderr
    assert files_under(tmp_path) == before and not root.exists()


@pytest.mark.parametrize("bad", NOT_DATES)
@pytest.mark.parametrize("command", [["models", "which", "--date", "{d}"], ["run", "--date", "{d}"],
                                     ["plan", "--start", "{d}", "--end", "2013-01-05"],
                                     ["invalidate", "--start", "2013-01-05", "--end", "{d}", "--stage", "validate",
                                      "--yes"]],
                         ids=["which", "run", "plan", "invalidate"])
def test_a_date_in_any_other_form_than_yyyy_mm_dd_is_refused(root, tmp_path, capsys, command, bad):
    before = files_under(tmp_path)
    line = refused(capsys, [a.replace("{d}", bad) for a in command])
    assert f"date {identifiers.shown(bad)} is refused: it must be a calendar date written YYYY-MM-DD" in line
    assert files_under(tmp_path) == before == []


@pytest.mark.parametrize("bad", ["../x", "/tmp/abs", "a/b", "..", ""])
def test_a_stage_that_is_not_one_is_refused(root, tmp_path, capsys, bad):
    line = refused(capsys, ["invalidate", "--start", "2013-01-05", "--end", "2013-01-05", "--stage", bad, "--yes"])
    assert line.startswith("mlpipe invalidate: error: argument --stage: invalid choice: ")
    assert files_under(tmp_path) == []


# ---- names in the dataset description -------------------------------------------------------

def rides_with(tmp_path: Path, old: str, new: str) -> Path:
    """tests/datasets/rides.toml with its feature module, copied to tmp_path/desc, `old` replaced by `new`."""
    folder = tmp_path / "desc"
    folder.mkdir()
    return rides_copy(folder, old, new)


def with_table_name(tmp_path: Path, name: str) -> Path:
    """The rides description with its reference table `stations` named `name` instead."""
    quoted = json.dumps(name)  # a TOML basic string
    path = rides_with(tmp_path, "[tables.stations]", f"[tables.{quoted}]")
    path.write_text(path.read_text().replace("[tables.stations.columns]", f"[tables.{quoted}.columns]"))
    return path


@pytest.mark.parametrize("bad", ["../../../../escaped", "/tmp/abs", "a/b", "..", "", "a\0b", "a" * 5000, "ѕtations"])
@pytest.mark.parametrize("command", [["plan", "--start", "2013-01-01", "--end", "2013-01-02"],
                                     ["run", "--date", "2013-01-01"]], ids=["plan", "run"])
def test_a_table_name_that_could_leave_its_folder_is_refused_before_anything_runs(root, tmp_path, capsys, command,
                                                                                 bad):
    path = with_table_name(tmp_path, bad)
    before = files_under(tmp_path)
    assert main(["--dataset", str(path), *command]) == 2
    out, err = capsys.readouterr()
    assert err == (f"mlpipe: {path}: table {identifiers.shown(bad)} is refused: it must be {identifiers.NAME_RULE}; "
                   "rename the table ([tables.<name>] in the dataset description)\n")
    assert out == ""
    assert files_under(tmp_path) == before and not root.exists()


def test_a_dataset_name_that_could_leave_its_folder_is_refused(root, tmp_path, capsys):
    path = rides_with(tmp_path, 'name = "rides"', 'name = "../../../elsewhere"')
    before = files_under(tmp_path)
    assert main(["--dataset", str(path), "run", "--date", "2013-01-01"]) == 2
    assert capsys.readouterr().err.startswith(f"mlpipe: {path}: dataset '../../../elsewhere' is refused: it must be ")
    assert files_under(tmp_path) == before and not root.exists()


def test_the_mlpipe_command_names_the_bad_table_in_one_line(env, tmp_path):
    path = with_table_name(tmp_path, "../../../../escaped")
    before = files_under(tmp_path)
    proc = run([BIN / "mlpipe", "--dataset", path, "plan", "--start", "2013-01-01", "--end", "2013-01-02"], env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (f"mlpipe: {path}: table '../../../../escaped' is refused: it must be "
                           f"{identifiers.NAME_RULE}; rename the table ([tables.<name>] in the dataset description)\n")
    assert files_under(tmp_path) == before and not Path(env["MLPIPE_ROOT"]).exists()


# ---- luigi's own command line ---------------------------------------------------------------

@pytest.mark.parametrize("task, others", [("CleanPartition", {"date": dt.date(2013, 1, 1)}),
                                          ("RawPartition", {"date": dt.date(2013, 1, 1)}),
                                          ("LandingFile", {"date": "2013-01-01"}), ("RawReference", {}),
                                          ("CleanReference", {})])
def test_a_table_parameter_that_could_leave_its_folder_is_refused(task, others):
    import tasks

    with pytest.raises(ValueError, match=r"^table '\.\./\.\./x' is refused: it must be an ASCII letter"):
        getattr(tasks, task)(table="../../x", **others)
    assert getattr(tasks, task)(table="flights", **others).table == "flights"


def test_the_luigi_command_refuses_a_table_or_stage_that_could_leave_its_folder(env, tmp_path):
    before = files_under(tmp_path)
    for args, message in ((["CleanPartition", "--table", "../../../../escaped", "--date", "2013-01-01"],
                           "IdentifierError: table '../../../../escaped' is refused: it must be an ASCII letter"),
                          (["RawReference", "--table", "/tmp/abs"], "IdentifierError: table '/tmp/abs' is refused"),
                          (["NightlyRange", "--start", "2013-01-01", "--end", "2013-01-02", "--stage", "../x"],
                           "ValueError: ../x is not a valid choice")):
        proc = run([BIN / "luigi", "--module", "tasks", *args, "--local-scheduler"], env)
        assert proc.returncode == 40, proc.stderr[-3000:]  # [retcode] unhandled_exception, before scheduling
        assert message in proc.stderr and "Scheduled" not in proc.stderr, proc.stderr[-3000:]
    assert files_under(tmp_path) == before
