"""pipeline.artifact: the skops model format, its checksum and its allow-list."""

import numpy as np
import pytest

from tests.pipeline.builders import CATEGORICAL, NUMERIC

from pipeline import artifact as ar
from pipeline import estimators as es
from pipeline.hashing import sha256_bytes


def test_dump_load_round_trip_predicts_the_same(fitted, data):
    estimator, _ = fitted
    blob = ar.dump_model(estimator)
    loaded = ar.load_model(blob, sha256_bytes(blob), "/reg/v1/model.skops")
    test = data.iloc[1000:1100]
    np.testing.assert_array_equal(es.predict(loaded, test, NUMERIC, CATEGORICAL, "binary"),
                                  es.predict(estimator, test, NUMERIC, CATEGORICAL, "binary"))


def test_tampered_model_bytes_are_refused(fitted):
    blob = ar.dump_model(fitted[0])
    recorded = sha256_bytes(blob)
    tampered = blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:]
    with pytest.raises(ar.ModelIntegrityError,
                       match=rf"model file /reg/v1/model\.skops has sha256 {sha256_bytes(tampered)[:12]}\.\.\., but its "
                             rf"metadata records {recorded[:12]}\.\.\.; .*refusing to load it"):
        ar.load_model(tampered, recorded, "/reg/v1/model.skops")


class Untrusted:
    """A type no allow-list names: skops records it and the loader must refuse it."""
    def __init__(self):
        self.payload = [1, 2]


def test_model_naming_an_unlisted_type_is_refused_even_with_the_right_sha256():
    import skops.io as sio

    blob = sio.dumps({"model": Untrusted()})
    with pytest.raises(ar.ModelIntegrityError, match=r"model file /reg/v2/model\.skops names type\(s\) outside the "
                                                     r"allow-list: \['tests\.pipeline\.test_artifact\.Untrusted'\]"):
        ar.load_model(blob, sha256_bytes(blob), "/reg/v2/model.skops")


def test_a_pickle_file_is_not_loaded_even_with_the_right_sha256():
    import pickle

    blob = pickle.dumps({"kind": "pickled"})
    with pytest.raises(ar.ModelIntegrityError, match=r"/reg/v3/model\.skops is not a readable skops file"):
        ar.load_model(blob, sha256_bytes(blob), "/reg/v3/model.skops")


def test_model_bytes_are_reproducible_across_copies(fitted):
    import copy

    estimator, _ = fitted
    clone = copy.deepcopy(estimator)  # other object ids, as in another process
    assert ar.dump_model(clone) == ar.dump_model(estimator)
