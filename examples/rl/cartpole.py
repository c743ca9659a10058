"""CartPole with policy gradient: rollouts on Ray actors, learning with raygrad on the driver.

    pip install gymnasium                     # or: pip install -e ".[rl]"
    python examples/rl/cartpole.py --actors 4 [--seed 0] [--max-episodes 2000]
    python examples/rl/cartpole.py --actors 0   # rollouts in this process, no Ray

REINFORCE with a learned baseline (Williams 1992; Sutton and Barto, ch. 13.4). Each iteration:

1. the driver puts the policy's weights, as NumPy arrays, into Ray's object store once;
2. every actor (a RolloutWorker with its own gymnasium CartPole-v1) runs a few episodes with
   those weights, sampling actions from the policy in NumPy, and returns the episodes;
3. on the driver, raygrad computes each step's discounted return G, the value net's estimate
   V(s) of it, and minimises -log pi(a|s) * (G - V(s)) (advantages normalised per batch) plus the
   squared error of V. One optimizer step per iteration.

The task counts as solved when the mean return over the last 100 episodes reaches 195 (the
classic CartPole criterion; CartPole-v1 caps an episode at 500 steps).
"""
from __future__ import annotations

import argparse
import os
import time
from collections import deque

import numpy as np

import tensor
import tensor.nn as nn
import tensor.nn.functional as F

SOLVED_RETURN, WINDOW = 195.0, 100


# ------------------------------------------------------------------------------------- the model
class ActorCritic(nn.Module):
    """(N, 4) observations -> ((N, 2) action logits, (N,) value estimates), two separate MLPs."""

    def __init__(self, observations: int = 4, actions: int = 2, hidden: int = 64):
        super().__init__()
        self.policy = nn.Sequential(nn.Linear(observations, hidden), nn.Tanh(), nn.Linear(hidden, actions))
        self.value = nn.Sequential(nn.Linear(observations, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs):
        return self.policy(obs), self.value(obs).squeeze(-1)

    def policy_weights(self) -> list[np.ndarray]:
        """The policy's Linear weights and biases as NumPy copies, in layer order (what actors get)."""
        return [p.detach().numpy().copy() for p in self.policy.parameters()]


def numpy_policy_logits(weights: list[np.ndarray], obs: np.ndarray) -> np.ndarray:
    """ActorCritic.policy in NumPy: Linear -> tanh -> Linear, for actors that need no engine or graph."""
    w1, b1, w2, b2 = weights
    return np.tanh(obs @ w1.T + b1) @ w2.T + b2


# ---------------------------------------------------------------------------------------- rollouts
class RolloutWorker:
    """One CartPole environment and a seeded random stream; runs episodes with given policy weights.

    Used as a Ray actor (ray.remote(RolloutWorker)) or, with --actors 0, as a plain object.
    """

    def __init__(self, seed: int, env_id: str = "CartPole-v1"):
        import gymnasium as gym  # imported here: only the processes that run episodes need it

        self.env = gym.make(env_id)
        self.rng = np.random.default_rng(seed)
        self.next_seed = seed  # the first reset seeds the environment; later resets continue its stream

    def run(self, weights: list[np.ndarray], episodes: int) -> list[dict]:
        """`episodes` full episodes: each {"obs": (T, 4) float32, "actions": (T,) int64, "rewards": (T,)}."""
        return [self._episode(weights) for _ in range(episodes)]

    def _episode(self, weights) -> dict:
        obs, _ = self.env.reset(seed=self.next_seed)
        self.next_seed = None
        observations, actions, rewards = [], [], []
        done = False
        while not done:
            logits = numpy_policy_logits(weights, obs[None, :].astype(np.float32))[0]
            probs = np.exp(logits - logits.max())
            action = int(self.rng.choice(len(probs), p=probs / probs.sum()))
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = self.env.step(action)
            rewards.append(reward)
            done = terminated or truncated
        return {"obs": np.asarray(observations, np.float32), "actions": np.asarray(actions, np.int64),
                "rewards": np.asarray(rewards, np.float32)}


def start_workers(actors: int, seed: int, address: str | None = None) -> list:
    """`actors` Ray actors (or one local worker for actors=0), each seeded differently.

    Starts a Ray instance of its own unless Ray is initialised already or `address` names a cluster.
    """
    if actors == 0:
        return [RolloutWorker(seed)]
    import ray

    if not ray.is_initialized() and address:
        ray.init(address=address, logging_level="ERROR")
    elif not ray.is_initialized():
        # address="local": a fresh instance even if another one runs on this machine. One logical CPU
        # per actor even on a smaller machine: actors mostly wait for the driver.
        ray.init(address="local", num_cpus=max(actors, os.cpu_count() or 1), include_dashboard=False,
                 logging_level="ERROR")
    remote = ray.remote(num_cpus=1)(RolloutWorker)
    return [remote.remote(seed + 1000 * (i + 1)) for i in range(actors)]


def collect(workers: list, weights: list[np.ndarray], episodes_per_worker: int) -> list[dict]:
    """Every worker's episodes with the same weights, in worker order (deterministic for a seed)."""
    if not hasattr(workers[0].run, "remote"):
        return [episode for w in workers for episode in w.run(weights, episodes_per_worker)]
    import ray

    shared = ray.put(weights)  # stored once, read by every actor
    results = ray.get([w.run.remote(shared, episodes_per_worker) for w in workers])
    return [episode for episodes in results for episode in episodes]


# ---------------------------------------------------------------------------------------- learning
def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = r_t + gamma r_{t+1} + gamma^2 r_{t+2} + ... for each step of one episode."""
    returns = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def update(model: ActorCritic, optimizer, episodes: list[dict], gamma: float) -> dict:
    """One policy-gradient step on a batch of episodes; the losses as floats."""
    obs = tensor.from_numpy(np.concatenate([e["obs"] for e in episodes]))
    actions = tensor.from_numpy(np.concatenate([e["actions"] for e in episodes]))
    returns = np.concatenate([discounted_returns(e["rewards"], gamma) for e in episodes])
    logits, values = model(obs)
    # The baseline is a constant for the policy's gradient: detach it, then normalise the advantages
    # so the step size does not grow with the return's scale as the policy improves.
    advantages = returns - values.detach().numpy()
    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_probs = -F.cross_entropy(logits, actions, reduction="none")  # log pi(a_t | s_t)
    policy_loss = -(log_probs * tensor.from_numpy(advantages.astype(np.float32))).mean()
    value_loss = F.mse_loss(values, tensor.from_numpy(returns))
    optimizer.zero_grad()
    (policy_loss + 0.5 * value_loss).backward()
    optimizer.step()
    return {"policy_loss": policy_loss.item(), "value_loss": value_loss.item()}


def train(actors: int = 4, episodes_per_iteration: int = 8, max_episodes: int = 2000, lr: float = 5e-3,
          gamma: float = 0.99, seed: int = 0, stop_when_solved: bool = True, address: str | None = None,
          log=print) -> dict:
    """Train until solved (mean return >= 195 over the last 100 episodes) or max_episodes.

    Returns {"returns": every episode's return in order, "solved_at": episodes until solved or None,
    "seconds": wall time}.
    """
    tensor.manual_seed(seed)
    model = ActorCritic()
    optimizer = tensor.optim.Adam(model.parameters(), lr=lr)
    workers = start_workers(actors, seed, address)
    per_worker = max(1, episodes_per_iteration // len(workers))
    returns, recent, solved_at = [], deque(maxlen=WINDOW), None
    started = time.perf_counter()
    while len(returns) < max_episodes:
        episodes = collect(workers, model.policy_weights(), per_worker)
        losses = update(model, optimizer, episodes, gamma)
        for episode in episodes:
            returns.append(float(episode["rewards"].sum()))
            recent.append(returns[-1])
            if solved_at is None and len(recent) == WINDOW and np.mean(recent) >= SOLVED_RETURN:
                solved_at = len(returns)
        if len(returns) % (10 * len(episodes)) < len(episodes) or solved_at:
            log(f"episodes {len(returns):5d}  mean return (last {len(recent)}) {np.mean(recent):6.1f}  "
                f"policy loss {losses['policy_loss']:+.3f}  value loss {losses['value_loss']:8.1f}  "
                f"({time.perf_counter() - started:.0f}s)")
        if solved_at and stop_when_solved:
            break
    seconds = time.perf_counter() - started
    if solved_at:
        log(f"solved after {solved_at} episodes: mean return {np.mean(returns[solved_at - WINDOW:solved_at]):.1f} "
            f"over episodes {solved_at - WINDOW + 1}..{solved_at} ({seconds:.0f}s)")
    else:
        log(f"not solved within {len(returns)} episodes (mean of the last {WINDOW}: {np.mean(recent):.1f})")
    return {"returns": returns, "solved_at": solved_at, "seconds": seconds, "model": model}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actors", type=int, default=4, help="Ray actors collecting rollouts (0: in this process)")
    parser.add_argument("--episodes-per-iteration", type=int, default=8,
                        help="episodes per policy update, split over the actors")
    parser.add_argument("--max-episodes", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", help="join a running Ray cluster (e.g. auto) instead of starting one")
    args = parser.parse_args()
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        raise SystemExit("cartpole.py needs gymnasium: pip install gymnasium (or pip install -e '.[rl]')") from None
    result = train(args.actors, args.episodes_per_iteration, args.max_episodes, args.lr, args.gamma, args.seed,
                   address=args.address)
    if args.actors:
        import ray

        ray.shutdown()  # stop the actors before the interpreter exits (no teardown noise)
    raise SystemExit(0 if result["solved_at"] else 1)


if __name__ == "__main__":
    main()
