"""pipeline.sampling: reproducible, capped row samples read day by day."""

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.builders import day_part, days_of, sampled_inputs

from pipeline import sampling as sp


def test_sample_rows_without_a_cap_keeps_every_labelled_row_in_order():
    parts = days_of([300, 0, 500])
    rows, counts = sp.sample_rows(iter(parts), "late", 0, seed=0)
    expected = pd.concat([f.dropna(subset=["late"]) for _, f in parts], ignore_index=True)
    pd.testing.assert_frame_equal(rows, expected)
    assert counts["rows_available"] == 800 and counts["rows_labelled"] == len(expected) == counts["rows_sampled"]


def test_sample_rows_caps_reproducibly_in_proportion_to_each_days_labelled_rows():
    parts = days_of([1000, 3000, 6000, 2000])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    rows, counts = sp.sample_rows(iter(parts), "late", 2400, seed=7)
    assert len(rows) == counts["rows_sampled"] == 2400 and rows["late"].notna().all()
    assert counts["rows_available"] == 12000 and counts["rows_labelled"] == sum(labelled.values())
    share = 2400 / counts["rows_labelled"]
    for day, n in labelled.items():
        assert abs(counts["rows_sampled_by_day"][day] - share * n) < 1  # largest remainder: within one row
    assert counts["rows_sampled_by_day"] == sp.day_quotas(labelled, 2400)
    assert rows.groupby("day")["row"].apply(lambda r: r.is_monotonic_increasing).all()  # part and row order
    assert list(rows["day"].drop_duplicates()) == [0, 1, 2, 3]
    again, _ = sp.sample_rows(iter(days_of([1000, 3000, 6000, 2000])), "late", 2400, seed=7)
    pd.testing.assert_frame_equal(rows, again)  # a rerun picks the same rows
    other, _ = sp.sample_rows(iter(parts), "late", 2400, seed=8)
    assert not rows[["day", "row"]].equals(other[["day", "row"]])
    # a day's rows depend only on (seed, day, its labelled rows) and its quota, not on the order read
    reordered, _ = sp.sample_rows(iter(parts[::-1]), "late", 2400, seed=7)
    assert set(zip(reordered["day"], reordered["row"])) == set(zip(rows["day"], rows["row"]))
    # each day's rows are those with its smallest keys: a uniform sample of the day's labelled rows
    for day, frame in parts:
        keys = sp.sample_keys(7, day, labelled[str(day)])
        picked = frame["row"].to_numpy()[frame["late"].notna().to_numpy()][np.argsort(keys)[:counts["rows_sampled_by_day"][str(day)]]]
        assert set(picked) == set(rows.loc[rows["day"] == frame["day"].iloc[0], "row"])


def test_day_quotas_add_up_to_the_cap_by_largest_remainder():
    assert sp.day_quotas({"a": 1, "b": 1, "c": 1}, 2) == {"a": 1, "b": 1, "c": 0}  # ties: earlier day
    assert sp.day_quotas({"a": 10, "b": 30}, 7) == {"a": 2, "b": 5}  # 1.75 and 5.25
    assert sp.day_quotas({"a": 10, "b": 30}, 100) == {"a": 10, "b": 30}  # under the cap: every row
    assert sp.day_quotas({"a": 0, "b": 5}, 3) == {"a": 0, "b": 3}


def test_sample_rows_holds_one_day_at_a_time():
    import gc
    import weakref

    seen: list = []

    def parts():  # made as they are asked for, like tasks.base.read_partitions
        for i in range(6):
            if len(seen) >= 2:  # the consumer's loop variable still holds the last one
                gc.collect()
                assert seen[-2]() is None, f"day {len(seen) - 2} is still referenced while reading day {i}"
            day, frame = day_part(i, 2000)
            seen.append(weakref.ref(frame))
            yield day, frame
            del frame

    rows, counts = sp.sample_rows(parts(), "late", 500, seed=0)
    assert len(seen) == 6 and len(rows) == 500 and counts["rows_available"] == 12000


def test_sample_rows_reads_arrow_tables_like_data_frames():
    import pyarrow as pa

    parts = days_of([800, 1200, 400])
    tables = [(day, pa.Table.from_pandas(f.assign(c=f["c"].astype("string")), preserve_index=False)
               .cast(pa.schema([pa.field(n, pa.dictionary(pa.int32(), pa.string())) if n == "c"
                                else pa.Table.from_pandas(f, preserve_index=False).schema.field(n)
                                for n in f.columns])))
              for day, f in parts]
    for cap in (0, 900):
        X_frames, y_frames = sampled_inputs(iter(parts), "late", cap, 3)
        X_tables, y_tables = sampled_inputs(iter(tables), "late", cap, 3)
        pd.testing.assert_frame_equal(X_frames, X_tables)
        np.testing.assert_array_equal(y_frames, y_tables)
        assert X_frames["c"].dtype == object and len(X_frames) == (cap or sum(f["late"].notna().sum() for _, f in parts))


def test_sample_rows_given_each_days_labelled_rows_cuts_each_day_once_to_the_same_sample():
    parts = days_of([1000, 3000, 0, 6000, 2000])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    cuts: list[int] = []
    real_select = sp._select

    def counting_select(part, positions):
        cuts.append(len(positions))
        return real_select(part, positions)

    for cap in (2400, 20_000):
        expected, expected_counts = sp.sample_rows(iter(parts), "late", cap, seed=7)
        cuts.clear()
        sp._select = counting_select
        try:
            rows, counts = sp.sample_rows(iter(parts), "late", cap, seed=7, labelled_by_day=labelled)
        finally:
            sp._select = real_select
        pd.testing.assert_frame_equal(rows, expected)
        assert counts == expected_counts
        # one cut per day with rows, each straight to the day's final quota
        assert cuts == [counts["rows_sampled_by_day"][str(day)] for day, f in parts if len(f)]


def test_sample_rows_refuses_labelled_counts_that_do_not_match_the_rows():
    parts = days_of([300, 500])
    labelled = {str(day): int(f["late"].notna().sum()) for day, f in parts}
    wrong = {**labelled, str(parts[1][0]): labelled[str(parts[1][0])] + 1}
    with pytest.raises(ValueError, match=r"day 2013-01-02 has \d+ labelled rows, but \d+ were announced"):
        sp.sample_rows(iter(parts), "late", 100, seed=0, labelled_by_day=wrong)
    with pytest.raises(ValueError, match=r"labelled_by_day announces the days"):
        sp.sample_rows(iter(parts[:1]), "late", 100, seed=0, labelled_by_day=labelled)


def test_sample_rows_rejects_a_negative_cap_and_a_day_given_twice():
    with pytest.raises(ValueError, match=r"max_rows must be >= 0 \(0 = no cap\), got -1"):
        sp.sample_rows(iter(days_of([10])), "late", -1, seed=0)
    day, frame = day_part(0, 50)
    with pytest.raises(ValueError, match=r"day 2013-01-01 appears twice in the parts to sample"):
        sp.sample_rows(iter([(day, frame), (day, frame)]), "late", 10, seed=0)
