"""Negative samplers: the distributions they claim and the log-probabilities they report."""

import numpy as np
import pytest

from reclib.neural.samplers import PopularitySampler, UniformSampler, make_sampler


def test_uniform_covers_all_items_evenly():
    draws = UniformSampler(5).sample(np.random.default_rng(0), (20000,))
    freq = np.bincount(draws, minlength=5) / 20000
    np.testing.assert_allclose(freq, 0.2, atol=0.01)
    assert UniformSampler(5).log_prob(np.arange(3)) == pytest.approx(np.log(0.2))


def test_popularity_frequencies_match_probabilities():
    counts = np.array([0, 1, 5, 20, 100])
    sampler = PopularitySampler(counts, beta=1.0, smoothing=1.0)
    expected = (counts + 1) / (counts + 1).sum()
    np.testing.assert_allclose(sampler.probabilities, expected)
    draws = sampler.sample(np.random.default_rng(0), (50, 2000))
    assert draws.shape == (50, 2000) and draws.min() >= 0 and draws.max() < 5
    np.testing.assert_allclose(np.bincount(draws.ravel(), minlength=5) / draws.size, expected,
                               atol=0.005)
    np.testing.assert_allclose(sampler.log_prob(np.array([4, 0])), np.log(expected[[4, 0]]))


def test_beta_zero_is_uniform():
    sampler = PopularitySampler([1, 10, 100], beta=0.0)
    np.testing.assert_allclose(sampler.probabilities, 1 / 3)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="sampler == 'zipf'"):
        make_sampler("zipf", [1, 2])
    with pytest.raises(ValueError, match="beta == -1"):
        PopularitySampler([1, 2], beta=-1.0)
    with pytest.raises(ValueError, match="non-negative"):
        PopularitySampler([1, -2])
