"""Shared fixtures: a fresh luigi task registry per test, a temporary storage root, and
luigi.cfg overrides that are undone after each test."""
from __future__ import annotations

import datetime as dt

import luigi
import luigi.configuration
import pytest

from luigi.task_register import Register


@pytest.fixture(autouse=True)
def fresh_luigi_registry():
    """luigi caches task and config instances by parameters; reset around every test
    (as luigi's own test/conftest.py does)."""
    Register.clear_instance_cache()
    yield
    Register.clear_instance_cache()


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A temporary storage root for every output, through MLPIPE_ROOT as a user would set it."""
    path = tmp_path / "root"
    monkeypatch.setenv("MLPIPE_ROOT", str(path))
    monkeypatch.delenv("MLPIPE_LANDING", raising=False)
    return path


@pytest.fixture
def luigi_config():
    """Set luigi.cfg values for one test: `luigi_config({"section": {"key": value}})`."""
    cfg = luigi.configuration.get_config()
    saved: list[tuple[str, str, str | None]] = []

    def apply(values: dict[str, dict[str, object]]) -> None:
        for section, options in values.items():
            if not cfg.has_section(section):
                cfg.add_section(section)
            for key, value in options.items():
                saved.append((section, key, cfg.get(section, key, None)))
                cfg.set(section, key, str(value))
        Register.clear_instance_cache()

    yield apply
    for section, key, old in reversed(saved):
        if old is None:
            cfg.remove_option(section, key)
        else:
            cfg.set(section, key, old)
    Register.clear_instance_cache()


SMALL = {
    "pipeline": {"start_date": "2013-01-01", "warmup_days": 4},
    "FeaturePartition": {"trailing_days": 3},
    "CandidateModel": {"window_days": 6, "holdout_days": 1, "max_iter": 30, "importance_repeats": 1},
    "gate": {"min_roc_auc": 0.5, "tolerance": 0.01},
    "compute": {"threads": 1},
}


@pytest.fixture
def small_pipeline(root, luigi_config):
    """A short pipeline (deployments from 2013-01-05, tiny models) over landed demo data
    for 2013-01-01..2013-01-08."""
    from pipeline.landing import land_demo
    from tasks.config import get_storage

    luigi_config(SMALL)
    land_demo(get_storage().landing, dt.date(2013, 1, 1), dt.date(2013, 1, 8))
    return root
