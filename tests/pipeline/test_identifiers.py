"""The identifiers that reach storage paths: each check accepts what the pipeline makes and refuses
anything that could name another folder, with a message naming the kind, the value and the rule;
the dataset description refuses such names and landing paths as DatasetError."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from pipeline import description, identifiers
from pipeline.hooks import DatasetError
from pipeline.registry import version_id

DATASETS = Path(__file__).resolve().parents[1] / "datasets"

# What an attacker or a typo would pass: traversal, absolute paths, separators, nothing, a NUL
# byte, a very long value, unicode lookalikes, a trailing newline.
ESCAPES = ["../x", "..", ".", "/tmp/abs", "a/b", "a\\b", "", "a\0b", "a" * 5000, "flіghts", "ｆlights",
           "flights\n", " flights"]
NOT_VERSIONS = ESCAPES + ["20130105-abc/../../x", "../../../x", "20130105-ABC", "20130105-lin",
                          "２０１３０１０５-abc", "20130105‐abc", "20130105-аbc", "2013010-abc", "20130105-",
                          "20130105-" + "a" * 65, "production"]
NOT_DATES = ESCAPES + ["20130105", "2013-W01-1", "2013-1-5", "2013-01-5", "2013-02-30", "２０１３-01-05",
                       "2013-01-05\n", "2013-01-05T00:00", "+2013-01-05", "13-01-05"]


def test_the_version_ids_the_registry_makes_pass():
    assert identifiers.check_version(version_id(dt.date(2013, 1, 15), "3f9a0c12de")) == "20130115-3f9a0c12de"
    assert identifiers.check_version("20130105-abc") == "20130105-abc"
    assert identifiers.check_version("20130105-" + "f" * 64)


@pytest.mark.parametrize("text", NOT_VERSIONS)
def test_a_version_that_is_not_an_id_is_refused_naming_it_and_the_rule(text):
    with pytest.raises(identifiers.IdentifierError) as refused:
        identifiers.check_version(text)
    message = str(refused.value)
    assert message.startswith("model version ") and "is refused: it must be the 8 digits" in message
    assert "`mlpipe models list` shows the published versions" in message
    assert "\n" not in message and len(message) < 400, "one readable line, even for a very long value"


@pytest.mark.parametrize("kind", ["dataset", "table", "stage"])
@pytest.mark.parametrize("text", ESCAPES + ["1flights", "_x", "-x", "a" * 65, "fl ights", "x.y", "x:y", "x@y"])
def test_a_name_that_could_leave_its_folder_is_refused(kind, text):
    with pytest.raises(identifiers.IdentifierError) as refused:
        identifiers.check_name(kind, text)
    assert str(refused.value).startswith(f"{kind} ")
    assert f"is refused: it must be {identifiers.NAME_RULE}" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_names_of_the_shipped_datasets_pass():
    for path in (description.BUILTIN, DATASETS / "rides.toml"):
        data = description.load(str(path))
        for name in [data.name, *data.daily_tables, *data.reference_tables]:
            assert identifiers.check_name("table", name) == name
    for name in ("clean", "features", "candidate", "evaluation", "deployment", "predictions", "monitoring",
                 "nightly", "A", "a" * 64, "x_y-Z9"):
        assert identifiers.check_name("stage", name) == name


def test_a_non_string_is_refused_like_a_bad_string():
    for value in (None, 5, ["flights"], b"flights"):
        with pytest.raises(identifiers.IdentifierError):
            identifiers.check_name("table", value)
        with pytest.raises(identifiers.IdentifierError):
            identifiers.check_version(value)
        with pytest.raises(identifiers.IdentifierError):
            identifiers.check_date(value)


def test_a_date_is_read_from_yyyy_mm_dd_only():
    assert identifiers.check_date("2013-01-05") == dt.date(2013, 1, 5)
    assert identifiers.check_date("2012-02-29") == dt.date(2012, 2, 29)


@pytest.mark.parametrize("text", NOT_DATES)
def test_any_other_form_of_date_is_refused(text):
    with pytest.raises(identifiers.IdentifierError, match=r"^date .* is refused: it must be a calendar date "
                                                          r"written YYYY-MM-DD; write it like 2013-01-05"):
        identifiers.check_date(text)


def test_an_impossible_date_says_why():
    with pytest.raises(identifiers.IdentifierError, match=r"'2013-02-30' .*\(day is out of range for month\)"):
        identifiers.check_date("2013-02-30")


@pytest.mark.parametrize("text", ["flights/flights_2000-01-02.csv", "planes.csv", "rides/2000/01/02/rides.parquet"])
def test_a_relative_landing_path_passes(text):
    assert identifiers.check_relative_path("landing path", text) == text


@pytest.mark.parametrize("text", ["../x.csv", "a/../../x.csv", "/etc/passwd", "a//b.csv", "a/./b.csv", "a/",
                                  "", "..", "a\\..\\b", "a\0b"])
def test_a_landing_path_that_leaves_the_landing_zone_is_refused(text):
    with pytest.raises(identifiers.IdentifierError, match="is refused: it must be a relative path"):
        identifiers.check_relative_path("landing path", text)


# ---- the dataset description ----------------------------------------------------------------

def rides_copy(tmp_path: Path, old: str, new: str) -> Path:
    """tests/datasets/rides.toml (and its feature module) in tmp_path with `old` replaced by `new`."""
    shutil.copy(DATASETS / "rides_features.py", tmp_path / "rides_features.py")
    text = (DATASETS / "rides.toml").read_text()
    assert old in text
    path = tmp_path / "rides.toml"
    path.write_text(text.replace(old, new))
    return path


def test_the_copied_description_loads_unchanged(tmp_path):
    assert description.load(str(rides_copy(tmp_path, "[tables.stations]", "[tables.stations]"))).name == "rides"


@pytest.mark.parametrize("bad", ["../../../../escaped", "/tmp/abs", "a/b", "..", "", "a\0b", "a" * 5000, "ѕtations"])
def test_a_table_name_that_could_leave_its_folder_is_refused_naming_it(tmp_path, bad):
    quoted = json.dumps(bad)  # a TOML basic string
    path = rides_copy(tmp_path, "[tables.stations]", f"[tables.{quoted}]")
    path.write_text(path.read_text().replace("[tables.stations.columns]", f"[tables.{quoted}.columns]"))
    with pytest.raises(DatasetError) as refused:
        description.load(str(path))
    assert str(refused.value).startswith(f"{path}: table {identifiers.shown(bad)} is refused: it must be "
                                         f"{identifiers.NAME_RULE}; rename the table")


@pytest.mark.parametrize("bad", ["../rides", "/tmp/abs", "a/b", "", "rіdes"])
def test_a_dataset_name_that_could_leave_its_folder_is_refused(tmp_path, bad):
    path = rides_copy(tmp_path, 'name = "rides"', f"name = {json.dumps(bad)}")
    with pytest.raises(DatasetError, match=r"^.*rides\.toml: dataset .* is refused: it must be an ASCII letter"):
        description.load(str(path))


def test_a_missing_dataset_name_is_refused(tmp_path):
    path = rides_copy(tmp_path, 'name = "rides"', "")
    with pytest.raises(DatasetError, match=r"rides\.toml: dataset None is refused"):
        description.load(str(path))


@pytest.mark.parametrize("bad", ["../../../etc/stations.csv", "/etc/stations.csv", "stations//stations.csv"])
def test_a_landing_path_outside_the_landing_zone_is_refused(tmp_path, bad):
    path = rides_copy(tmp_path, 'landing = "stations/stations.csv"', f"landing = {json.dumps(bad)}")
    with pytest.raises(DatasetError, match=r"\[tables\.stations\] landing = .*: landing path .* is refused: it must "
                                           r"be a relative path"):
        description.load(str(path))


def test_a_daily_landing_path_is_checked_as_formatted(tmp_path):
    path = rides_copy(tmp_path, 'landing = "rides/{date:%Y/%m/%d}/rides.parquet"',
                      'landing = "rides/{date:%Y/%m/%d}/../../../../../x.parquet"')
    with pytest.raises(DatasetError, match=r"landing path 'rides/2000/01/02/\.\./\.\./\.\./\.\./\.\./x\.parquet' is "
                                           "refused"):
        description.load(str(path))
