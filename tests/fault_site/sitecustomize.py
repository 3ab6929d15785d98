"""Python imports this at startup when tests/fault_site is on PYTHONPATH, which only
tests/test_crashes.py arranges: with MLPIPE_FAULT_LOG set, it installs tests/faults.py's hooks
into pipeline.storage (its write_bytes, and for the kills inside the local writer its os)."""
import os

if os.environ.get("MLPIPE_FAULT_LOG"):
    import importlib.util
    import pathlib

    _spec = importlib.util.spec_from_file_location(
        "mlpipe_test_faults", pathlib.Path(__file__).resolve().parents[1] / "faults.py")
    _faults = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_faults)
    _faults.install()
