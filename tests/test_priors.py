import numpy as np
import pytest

from tfp_vae.backend import tfd
from tfp_vae.priors import isotropic_gaussian_prior


def test_isotropic_prior_is_standard_mvn_diag():
    prior = isotropic_gaussian_prior(3)
    assert isinstance(prior, tfd.MultivariateNormalDiag)
    np.testing.assert_array_equal(prior.mean(), np.zeros(3))
    np.testing.assert_array_equal(prior.covariance(), np.eye(3))
    # log N(0; 0, I) = -d/2 log(2π)
    np.testing.assert_allclose(prior.log_prob(np.zeros(3, np.float32)),
                               -1.5 * np.log(2 * np.pi), rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_isotropic_prior_rejects_bad_latent_dim(bad):
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        isotropic_gaussian_prior(bad)
