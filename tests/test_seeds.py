"""Stateless seeds and fold-in: reproducible and independent streams."""

import numpy as np

from tfp_vae.seeds import fold_in, numpy_rng, stateless_seed


def test_stateless_seed_forms():
    assert stateless_seed(None) is None
    np.testing.assert_array_equal(stateless_seed(7), [7, 0])
    np.testing.assert_array_equal(stateless_seed(np.int64(7)), [7, 0])
    np.testing.assert_array_equal(stateless_seed((3, 4)), [3, 4])


def test_fold_in_is_a_pure_function_of_its_parts():
    np.testing.assert_array_equal(fold_in(0, "test", 3), fold_in(0, "test", 3))
    different = [fold_in(0, "test", 3), fold_in(0, "test", 4), fold_in(1, "test", 3),
                 fold_in(0, "validation", 3), fold_in(0)]
    pairs = {tuple(int(v) for v in seed) for seed in different}
    assert len(pairs) == len(different)


def test_numpy_rng_streams():
    a = numpy_rng(0, "binarize").random(5)
    np.testing.assert_array_equal(a, numpy_rng(0, "binarize").random(5))
    assert not np.allclose(a, numpy_rng(0, "test").random(5))
    assert not np.allclose(a, numpy_rng(1, "binarize").random(5))
