import numpy as np
import pytest

from reclib._random import scaled_normal


@pytest.mark.parametrize("n_rows, block_rows", [(1, 4), (10, 3), (12, 4), (7, 100), (0, 5)])
def test_scaled_normal_draws_the_same_numbers_as_one_call(n_rows, block_rows):
    expected = (np.random.default_rng(5).standard_normal((n_rows, 6)) * 0.1).astype(np.float32)
    got = scaled_normal(np.random.default_rng(5), n_rows, 6, 0.1, block_rows=block_rows)
    assert got.dtype == np.float32 and got.shape == (n_rows, 6)
    np.testing.assert_array_equal(got, expected)


def test_scaled_normal_leaves_the_generator_where_one_call_would():
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    a.standard_normal((10, 3))
    scaled_normal(b, 10, 3, 1.0, block_rows=4)
    assert a.standard_normal() == b.standard_normal()
