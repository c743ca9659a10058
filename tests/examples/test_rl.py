"""examples/rl: REINFORCE with a baseline on CartPole, rollouts on Ray actors, learns well above random.

Skipped without gymnasium (pip install gymnasium, or the `rl` extra).
"""
import numpy as np
import pytest
from example_helpers import load_example

pytest.importorskip("gymnasium")
cartpole = load_example("rl/cartpole.py")

RANDOM_POLICY_RETURN = 22  # CartPole-v1's mean episode length under uniformly random actions


def test_discounted_returns():
    returns = cartpole.discounted_returns(np.ones(3, np.float32), gamma=0.5)
    np.testing.assert_allclose(returns, [1.75, 1.5, 1.0])


def test_numpy_policy_matches_the_engine_policy():
    import tensor

    model = cartpole.ActorCritic()
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with tensor.no_grad():
        expected = model(tensor.from_numpy(obs))[0].numpy()
    np.testing.assert_allclose(cartpole.numpy_policy_logits(model.policy_weights(), obs), expected, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.timeout(300)
def test_actors_collect_and_the_policy_improves(ray_cluster):
    import ray

    ray.cloudpickle.register_pickle_by_value(cartpole)  # loaded from a path: the actors cannot import it
    result = cartpole.train(actors=2, episodes_per_iteration=8, max_episodes=160, seed=0, stop_when_solved=False,
                            log=lambda line: None)
    returns = result["returns"]
    assert len(returns) == 160
    assert np.mean(returns[-40:]) > 2 * RANDOM_POLICY_RETURN, returns[-40:]
    assert np.mean(returns[-40:]) > 1.5 * np.mean(returns[:40])
