"""Reinforcement learning beyond the classic agents: off-policy corrections, recurrent replay, world
models, search targets, imitation, offline RL, entropy-regularised Q-learning and exploration bonuses,
each written as its reference implementation writes it.

IMPALA's V-trace (torchbeast vtrace.py / monobeast.py), R2D2's burn-in and value rescaling (seed_rl's
r2d2 learner), DreamerV1's Gaussian RSSM (yusukeurakami/dreamer-pytorch) and DreamerV2's discrete RSSM
with KL balancing (RajGhugare19/dreamerv2), an AlphaZero policy-value net on MCTS visit counts
(junxiaosong/AlphaZero_Gomoku), GAIL's discriminator with a gradient penalty (ikostrikov/pytorch-a2c-ppo-acktr-gail),
CQL (aviralkumar2907/CQL's rlkit cql.py), IQL (gwthomas/IQL-PyTorch), discrete SAC (CleanRL
sac_atari.py), soft Q-learning (Div99/IQ-Learn softq.py) and RND (jcwon0/RND-pytorch, with rl_games'
RunningMeanStd module).

Same protocol as test_ported_scripts.py: the networks are built in torch and their state copied into
raygrad, both see the same NumPy data (sampled actions, noise and indices drawn here and passed in), and
the losses and final parameters must agree to float32 accuracy.
"""
import copy
from collections import namedtuple

import numpy as np
import pytest

import tensor
from tests.tensor.test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def prefixed(**modules):
    return {f"{name}.{k}": v for name, m in modules.items() for k, v in numpy_state(m).items()}


class RunningMeanStd(object):
    """openai/baselines common/running_mean_std.py (NumPy), as GAIL and RND use it."""

    def __init__(self, epsilon=1e-4, shape=()):
        self.mean = np.zeros(shape, 'float64')
        self.var = np.ones(shape, 'float64')
        self.count = epsilon

    def update(self, x):
        batch_mean = np.mean(x, axis=0)
        batch_var = np.var(x, axis=0)
        batch_count = x.shape[0]
        self.update_from_moments(batch_mean, batch_var, batch_count)

    def update_from_moments(self, batch_mean, batch_var, batch_count):
        delta = batch_mean - self.mean
        tot_count = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot_count
        m_a = self.var * self.count
        m_b = batch_var * batch_count
        M2 = m_a + m_b + np.square(delta) * self.count * batch_count / tot_count
        self.mean, self.var, self.count = new_mean, M2 / tot_count, tot_count


# ---- 1. IMPALA (torchbeast): V-trace targets from importance weights, monobeast's learn() ----------------

VTraceFromLogitsReturns = namedtuple("VTraceFromLogitsReturns", [
    "vs", "pg_advantages", "log_rhos", "behavior_action_log_probs", "target_action_log_probs"])
VTraceReturns = namedtuple("VTraceReturns", "vs pg_advantages")

I_OBS, I_ACT, I_UNROLL, I_B = 5, 3, 5, 4


def vtrace_fns(T):
    """torchbeast/core/vtrace.py, verbatim but for the module name."""
    F = T.nn.functional

    def action_log_probs(policy_logits, actions):
        return -F.nll_loss(
            F.log_softmax(T.flatten(policy_logits, 0, -2), dim=-1),
            T.flatten(actions),
            reduction="none",
        ).view_as(actions)

    def from_logits(behavior_policy_logits, target_policy_logits, actions, discounts, rewards, values,
                    bootstrap_value, clip_rho_threshold=1.0, clip_pg_rho_threshold=1.0):
        """V-trace for softmax policies."""
        target_action_log_probs = action_log_probs(target_policy_logits, actions)
        behavior_action_log_probs = action_log_probs(behavior_policy_logits, actions)
        log_rhos = target_action_log_probs - behavior_action_log_probs
        vtrace_returns = from_importance_weights(
            log_rhos=log_rhos, discounts=discounts, rewards=rewards, values=values,
            bootstrap_value=bootstrap_value, clip_rho_threshold=clip_rho_threshold,
            clip_pg_rho_threshold=clip_pg_rho_threshold)
        return VTraceFromLogitsReturns(
            log_rhos=log_rhos, behavior_action_log_probs=behavior_action_log_probs,
            target_action_log_probs=target_action_log_probs, **vtrace_returns._asdict())

    @T.no_grad()
    def from_importance_weights(log_rhos, discounts, rewards, values, bootstrap_value, clip_rho_threshold=1.0,
                                clip_pg_rho_threshold=1.0):
        """V-trace from log importance weights."""
        with T.no_grad():
            rhos = T.exp(log_rhos)
            if clip_rho_threshold is not None:
                clipped_rhos = T.clamp(rhos, max=clip_rho_threshold)
            else:
                clipped_rhos = rhos
            cs = T.clamp(rhos, max=1.0)
            # Append bootstrapped value to get [v1, ..., v_t+1]
            values_t_plus_1 = T.cat([values[1:], T.unsqueeze(bootstrap_value, 0)], dim=0)
            deltas = clipped_rhos * (rewards + discounts * values_t_plus_1 - values)
            acc = T.zeros_like(bootstrap_value)
            result = []
            for t in range(discounts.shape[0] - 1, -1, -1):
                acc = deltas[t] + discounts[t] * cs[t] * acc
                result.append(acc)
            result.reverse()
            vs_minus_v_xs = T.stack(result)
            # Add V(x_s) to get v_s.
            vs = T.add(vs_minus_v_xs, values)
            # Advantage for policy gradient.
            broadcasted_bootstrap_values = T.ones_like(vs[0]) * bootstrap_value
            vs_t_plus_1 = T.cat([vs[1:], broadcasted_bootstrap_values.unsqueeze(0)], dim=0)
            if clip_pg_rho_threshold is not None:
                clipped_pg_rhos = T.clamp(rhos, max=clip_pg_rho_threshold)
            else:
                clipped_pg_rhos = rhos
            pg_advantages = clipped_pg_rhos * (rewards + discounts * vs_t_plus_1 - values)
        # Make sure no gradients backpropagated through the returned values.
        return VTraceReturns(vs=vs, pg_advantages=pg_advantages)

    return from_logits, from_importance_weights


def impala_net(T):
    nn, F = T.nn, T.nn.functional

    class Net(nn.Module):
        """monobeast.py's AtariNet with its conv trunk replaced by one Linear layer (vector observations)."""

        def __init__(self, observation_shape, num_actions, use_lstm=True):
            super(Net, self).__init__()
            self.observation_shape = observation_shape
            self.num_actions = num_actions
            self.fc = nn.Linear(observation_shape[0], 12)
            # FC output size + one-hot of last action + last reward.
            core_output_size = self.fc.out_features + num_actions + 1
            self.use_lstm = use_lstm
            if use_lstm:
                self.core = nn.LSTM(core_output_size, core_output_size, 2)
            self.policy = nn.Linear(core_output_size, self.num_actions)
            self.baseline = nn.Linear(core_output_size, 1)

        def initial_state(self, batch_size):
            if not self.use_lstm:
                return tuple()
            return tuple(T.zeros(self.core.num_layers, batch_size, self.core.hidden_size) for _ in range(2))

        def forward(self, inputs, core_state=()):
            x = inputs["frame"]  # [T, B, OBS].
            steps, B, *_ = x.shape
            x = T.flatten(x, 0, 1)  # Merge time and batch.
            x = x.float()
            x = F.relu(self.fc(x))
            one_hot_last_action = F.one_hot(inputs["last_action"].view(steps * B), self.num_actions).float()
            clipped_reward = T.clamp(inputs["reward"], -1, 1).view(steps * B, 1)
            core_input = T.cat([x, clipped_reward, one_hot_last_action], dim=-1)
            if self.use_lstm:
                core_input = core_input.view(steps, B, -1)
                core_output_list = []
                notdone = (~inputs["done"]).float()
                for input, nd in zip(core_input.unbind(), notdone.unbind()):
                    # Reset core state to zero whenever an episode ended.
                    # Make `done` broadcastable with (num_layers, B, hidden_size) states:
                    nd = nd.view(1, -1, 1)
                    core_state = tuple(nd * s for s in core_state)
                    output, core_state = self.core(input.unsqueeze(0), core_state)
                    core_output_list.append(output)
                core_output = T.flatten(T.cat(core_output_list), 0, 1)
            else:
                core_output = core_input
                core_state = tuple()
            policy_logits = self.policy(core_output)
            baseline = self.baseline(core_output)
            # monobeast samples the actors' action here with torch.multinomial when training; learn() never
            # reads it, so the draw is left out and the greedy action kept.
            action = T.argmax(policy_logits, dim=1)
            policy_logits = policy_logits.view(steps, B, self.num_actions)
            baseline = baseline.view(steps, B)
            action = action.view(steps, B)
            return (dict(policy_logits=policy_logits, baseline=baseline, action=action), core_state)

    return Net((I_OBS,), I_ACT)


def train_impala(T, device, init, batches, discounting=0.99, baseline_cost=0.5, entropy_cost=0.01,
                 grad_norm_clipping=1.0, total_steps=200):
    F = T.nn.functional
    device = device_of(T, device)
    from_logits, _ = vtrace_fns(T)

    def compute_baseline_loss(advantages):
        return 0.5 * T.sum(advantages ** 2)

    def compute_entropy_loss(logits):
        """Return the entropy loss, i.e., the negative entropy of the policy."""
        policy = F.softmax(logits, dim=-1)
        log_policy = F.log_softmax(logits, dim=-1)
        return T.sum(policy * log_policy)

    def compute_policy_gradient_loss(logits, actions, advantages):
        cross_entropy = F.nll_loss(
            F.log_softmax(T.flatten(logits, 0, 1), dim=-1),
            target=T.flatten(actions, 0, 1),
            reduction="none",
        )
        cross_entropy = cross_entropy.view_as(advantages)
        return T.sum(cross_entropy * advantages.detach())

    model = ported_model(T, impala_net, init, device)
    actor_model = impala_net(T).to(device)
    actor_model.load_state_dict(model.state_dict())
    optimizer = T.optim.RMSprop(model.parameters(), lr=0.01, momentum=0, eps=0.01, alpha=0.99)

    def lr_lambda(epoch):
        return 1 - min(epoch * I_UNROLL * I_B, total_steps) / total_steps

    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)
    losses = []
    for batch_np, state_np in batches:
        batch = {key: T.from_numpy(value).to(device=device, non_blocking=True) for key, value in batch_np.items()}
        initial_agent_state = tuple(T.from_numpy(s).to(device=device, non_blocking=True) for s in state_np)
        learner_outputs, unused_state = model(batch, initial_agent_state)
        # Take final value function slice for bootstrapping.
        bootstrap_value = learner_outputs["baseline"][-1]
        # Move from obs[t] -> action[t] to action[t] -> obs[t].
        batch = {key: tensor[1:] for key, tensor in batch.items()}
        learner_outputs = {key: tensor[:-1] for key, tensor in learner_outputs.items()}
        rewards = batch["reward"]
        clipped_rewards = T.clamp(rewards, -1, 1)
        discounts = (~batch["done"]).float() * discounting
        vtrace_returns = from_logits(
            behavior_policy_logits=batch["policy_logits"],
            target_policy_logits=learner_outputs["policy_logits"],
            actions=batch["action"],
            discounts=discounts,
            rewards=clipped_rewards,
            values=learner_outputs["baseline"],
            bootstrap_value=bootstrap_value,
        )
        pg_loss = compute_policy_gradient_loss(learner_outputs["policy_logits"], batch["action"],
                                               vtrace_returns.pg_advantages)
        baseline_loss = baseline_cost * compute_baseline_loss(vtrace_returns.vs - learner_outputs["baseline"])
        entropy_loss = entropy_cost * compute_entropy_loss(learner_outputs["policy_logits"])
        total_loss = pg_loss + baseline_loss + entropy_loss
        assert not vtrace_returns.vs.requires_grad and vtrace_returns.log_rhos.requires_grad
        optimizer.zero_grad()
        total_loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), grad_norm_clipping)
        optimizer.step()
        scheduler.step()
        actor_model.load_state_dict(model.state_dict())
        losses += [total_loss.item(), pg_loss.item(), baseline_loss.item(), entropy_loss.item(),
                   scheduler.get_last_lr()[0]]
        losses += vtrace_returns.vs.flatten().tolist() + vtrace_returns.pg_advantages.flatten().tolist()
        losses += unused_state[0].flatten().tolist()
    return losses, prefixed(model=model, actor_model=actor_model)


def impala_batches(rng, steps=3):
    hidden = 12 + I_ACT + 1
    out = []
    for _ in range(steps):
        n = I_UNROLL + 1
        batch = dict(frame=rng.standard_normal((n, I_B, I_OBS)).astype(np.float32),
                     reward=(rng.standard_normal((n, I_B)) * 1.5).astype(np.float32),  # the clamp bites
                     done=rng.random((n, I_B)) < 0.2,
                     last_action=rng.integers(0, I_ACT, (n, I_B)),
                     action=rng.integers(0, I_ACT, (n, I_B)),
                     policy_logits=rng.standard_normal((n, I_B, I_ACT)).astype(np.float32))
        state = tuple((rng.standard_normal((2, I_B, hidden)) * 0.5).astype(np.float32) for _ in range(2))
        out.append((batch, state))
    return out


def test_impala_vtrace(device):
    torch.manual_seed(0)
    run_both(train_impala, device, numpy_state(impala_net(torch)), impala_batches(np.random.default_rng(0)))


def test_vtrace_on_policy_without_clipping_is_the_discounted_return(device):
    """With log_rhos = 0, V-trace's vs are the n-step bootstrapped returns (the paper's remark 1)."""
    _, from_importance_weights = vtrace_fns(tensor)
    rng = np.random.default_rng(1)
    steps, B = 5, 3
    rewards, values = rng.standard_normal((steps, B)), rng.standard_normal((steps, B))
    discounts, bootstrap = np.full((steps, B), 0.9), rng.standard_normal(B)
    t = lambda a: tensor.tensor(a, dtype=tensor.float32, device=device)  # noqa: E731
    out = from_importance_weights(t(np.zeros((steps, B))), t(discounts), t(rewards), t(values), t(bootstrap))
    want, acc = np.zeros((steps, B)), bootstrap
    for i in reversed(range(steps)):
        acc = rewards[i] + discounts[i] * acc
        want[i] = acc
    np.testing.assert_allclose(out.vs.cpu().numpy(), want, rtol=1e-5, atol=1e-5)


# ---- 2. R2D2: stored LSTM state, burn-in, double-Q n-step targets under value rescaling, mixed priorities --

R_OBS, R_ACT, R_HID, BURN_IN, LEARN, N_STEP, R_B = 4, 3, 8, 3, 4, 2, 4


def value_rescaling_fns(T, eps=1e-3):
    """seed_rl agents/r2d2/learner.py's h(x) and h^-1(x) (Pohlen et al. 2018, proposition A.2)."""

    def value_function_rescaling(x):
        return T.sign(x) * (T.sqrt(T.abs(x) + 1.) - 1.) + eps * x

    def inverse_value_function_rescaling(x):
        return T.sign(x) * (T.square(((T.sqrt(1. + 4. * eps * (T.abs(x) + 1. + eps))) - 1.) / (2. * eps)) - 1.)

    return value_function_rescaling, inverse_value_function_rescaling


def n_step_bellman_target(T, rewards, done, q_target, gamma, n_steps):
    """seed_rl's n_step_bellman_target, time-major: step i's target bootstraps from q_target[i + n - 1]."""
    # We append n_steps - 1 times the last q_target. They are divided by gamma ** k to correct for the fact
    # that they are at a 'fake' indices, and will therefore end up being multiplied back by gamma ** k.
    # We prepend 0s that will be discarded at the first iteration below.
    bellman_target = T.cat([T.zeros_like(q_target[0:1]), q_target] +
                           [q_target[-1:] / gamma ** k for k in range(1, n_steps)], dim=0)
    # Pad with n_steps 0s. They will be used to compute the last n-step target.
    done = T.cat([done] + [T.zeros_like(done[0:1])] * n_steps, dim=0)
    rewards = T.cat([rewards] + [T.zeros_like(rewards[0:1])] * n_steps, dim=0)
    # Iteratively build the n_steps targets. After the i-th iteration (1-based), bellman_target is
    # effectively the i-step returns.
    for _ in range(n_steps):
        rewards = rewards[:-1]
        done = done[:-1]
        bellman_target = rewards + gamma * (1. - done.float()) * bellman_target[:-1]
    return bellman_target


def r2d2_net(T):
    nn, F = T.nn, T.nn.functional

    class R2D2(nn.Module):
        """g6ling/Reinforcement-Learning-Pytorch-Cartpole's R2D2 model: batch-first LSTM, dueling head."""

        def __init__(self, num_inputs, num_outputs):
            super(R2D2, self).__init__()
            self.num_inputs = num_inputs
            self.num_outputs = num_outputs
            self.lstm = nn.LSTM(input_size=num_inputs, hidden_size=R_HID, batch_first=True)
            self.fc = nn.Linear(R_HID, 16)
            self.fc_adv = nn.Linear(16, num_outputs)
            self.fc_val = nn.Linear(16, 1)

        def forward(self, x, hidden=None):
            # x [batch_size, sequence_length, num_inputs]
            out, hidden = self.lstm(x, hidden)
            out = F.relu(self.fc(out))
            adv = self.fc_adv(out)
            adv = adv.view(out.size(0), out.size(1), self.num_outputs)
            val = self.fc_val(out)
            val = val.view(out.size(0), out.size(1), 1)
            qvalue = val + (adv - adv.mean(dim=2, keepdim=True))
            return qvalue, hidden

        def get_action(self, state, hidden):
            state = state.unsqueeze(0).unsqueeze(0)
            qvalue, hidden = self.forward(state, hidden)
            _, action = T.max(qvalue, 2)
            return action.cpu().numpy()[0][0], hidden

    return R2D2(R_OBS, R_ACT)


def train_r2d2(T, device, init, batches, acting_obs, gamma=0.9, eta=0.9, target_update_period=2, clip=1.0):
    F = T.nn.functional
    device = device_of(T, device)
    h, h_inv = value_rescaling_fns(T)
    online_net = ported_model(T, r2d2_net, init, device)
    target_net = r2d2_net(T).to(device)
    target_net.load_state_dict(online_net.state_dict())
    optimizer = T.optim.Adam(online_net.parameters(), lr=3e-3, eps=1e-3)
    losses = []
    for step, (states, actions, rewards, dones, rnn_state, is_weights) in enumerate(batches, start=1):
        states = T.as_tensor(states, dtype=T.float32, device=device)        # [B, burn-in + unroll, obs]
        actions = T.as_tensor(actions, device=device).unsqueeze(2)          # [B, unroll, 1]
        rewards = T.as_tensor(rewards, dtype=T.float32, device=device).t()  # [unroll, B]: time-major below
        dones = T.as_tensor(dones, device=device).t()
        is_weights = T.as_tensor(is_weights, dtype=T.float32, device=device)
        rnn_state = T.as_tensor(rnn_state, dtype=T.float32, device=device)  # [B, 2, hidden], stored at t = 0
        [h0, c0] = rnn_state.transpose(0, 1)
        h0 = h0.unsqueeze(0).detach()
        c0 = c0.unsqueeze(0).detach()
        # Burn-in: unroll the stored state through the first steps without gradients.
        with T.no_grad():
            _, online_hidden = online_net(states[:, :BURN_IN], (h0, c0))
            _, target_hidden = target_net(states[:, :BURN_IN], (h0, c0))
            target_q_all, _ = target_net(states[:, BURN_IN:], target_hidden)
        q_all, _ = online_net(states[:, BURN_IN:], online_hidden)
        q = q_all.gather(2, actions).squeeze(2).t()                          # [unroll, B]
        with T.no_grad():
            best = q_all.argmax(dim=2, keepdim=True)                         # double Q-learning
            target_q = target_q_all.gather(2, best).squeeze(2).t()
            target = n_step_bellman_target(T, rewards[:-1], dones[:-1], h_inv(target_q[1:]), gamma, N_STEP)
            target = h(target)
        td_error = target[:LEARN] - q[:LEARN]
        abs_td = td_error.abs().detach()
        priorities = eta * abs_td.max(dim=0)[0] + (1 - eta) * abs_td.mean(dim=0)
        loss = (is_weights * 0.5 * td_error.pow(2).mean(dim=0)).mean()
        optimizer.zero_grad()
        loss.backward()
        grad_norm = T.nn.utils.clip_grad_norm_(online_net.parameters(), clip)
        optimizer.step()
        if step % target_update_period == 0:
            target_net.load_state_dict(online_net.state_dict())
        huber = F.smooth_l1_loss(q[:LEARN], target[:LEARN], reduction="none")
        losses += [loss.item(), grad_norm.item()] + priorities.tolist() + huber.flatten().tolist()
    # Acting: one step at a time, carrying the LSTM state.
    hidden = (T.zeros(1, 1, R_HID, device=device), T.zeros(1, 1, R_HID, device=device))
    with T.no_grad():
        for obs in acting_obs:
            action, hidden = online_net.get_action(T.from_numpy(obs).float().to(device), hidden)
            losses.append(int(action))
        losses += hidden[0].flatten().tolist()
    return losses, prefixed(online_net=online_net, target_net=target_net)


def r2d2_batches(rng, steps=4):
    unroll = LEARN + N_STEP + 1
    out = []
    for _ in range(steps):
        out.append((rng.standard_normal((R_B, BURN_IN + unroll, R_OBS)), rng.integers(0, R_ACT, (R_B, unroll)),
                    rng.standard_normal((R_B, unroll)) * 5,  # returns large enough that h(x) matters
                    rng.random((R_B, unroll)) < 0.15, rng.standard_normal((R_B, 2, R_HID)) * 0.3,
                    rng.random(R_B) * 0.5 + 0.5))
    return out


def test_r2d2(device):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    run_both(train_r2d2, device, numpy_state(r2d2_net(torch)), r2d2_batches(rng),
             rng.standard_normal((4, R_OBS)).astype(np.float32))


def test_value_rescaling_inverts(device):
    h, h_inv = value_rescaling_fns(tensor)
    x = tensor.tensor([-300.0, -5.0, -0.5, 0.0, 0.25, 3.0, 1000.0], device=device, dtype=tensor.float64)
    np.testing.assert_allclose(h_inv(h(x)).cpu().numpy(), x.cpu().numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(h(x).cpu().numpy(), value_rescaling_fns(torch)[0](torch.tensor(x.cpu().numpy())).numpy())


# ---- 3. DreamerV1 (yusukeurakami/dreamer-pytorch): Gaussian RSSM with GRUCell, free nats, imagination,
#         lambda-returns, FreezeParameters --------------------------------------------------------------

D_OBS, D_ACT, D_BELIEF, D_STATE, D_HIDDEN, D_EMBED = 6, 2, 8, 4, 12, 8
D_CHUNK, D_B, D_HORIZON = 5, 3, 4


def dreamer_v1_models(T):
    nn, F = T.nn, T.nn.functional

    class TransitionModel(nn.Module):
        def __init__(self, belief_size, state_size, action_size, hidden_size, embedding_size,
                     activation_function='relu', min_std_dev=0.1):
            super().__init__()
            self.act_fn = getattr(F, activation_function)
            self.min_std_dev = min_std_dev
            self.fc_embed_state_action = nn.Linear(state_size + action_size, belief_size)
            self.rnn = nn.GRUCell(belief_size, belief_size)
            self.fc_embed_belief_prior = nn.Linear(belief_size, hidden_size)
            self.fc_state_prior = nn.Linear(hidden_size, 2 * state_size)
            self.fc_embed_belief_posterior = nn.Linear(belief_size + embedding_size, hidden_size)
            self.fc_state_posterior = nn.Linear(hidden_size, 2 * state_size)

        # Operates over (previous) state, (previous) actions, (previous) belief, (previous) nonterminals
        # (mask), and (current) observations. torch.randn_like(...) in the original: the draws come in.
        def forward(self, prev_state, actions, prev_belief, observations=None, nonterminals=None,
                    prior_noise=None, posterior_noise=None):
            # Create lists for hidden states (cannot use single tensor as buffer because autograd won't work
            # with inplace writes)
            steps = actions.size(0) + 1
            beliefs, prior_states, prior_means, prior_std_devs, posterior_states, posterior_means, \
                posterior_std_devs = [T.empty(0)] * steps, [T.empty(0)] * steps, [T.empty(0)] * steps, \
                [T.empty(0)] * steps, [T.empty(0)] * steps, [T.empty(0)] * steps, [T.empty(0)] * steps
            beliefs[0], prior_states[0], posterior_states[0] = prev_belief, prev_state, prev_state
            # Loop over time sequence
            for t in range(steps - 1):
                # Select appropriate previous state
                _state = prior_states[t] if observations is None else posterior_states[t]
                # Mask if previous transition was terminal
                _state = _state if nonterminals is None else _state * nonterminals[t]
                # Compute belief (deterministic hidden state)
                hidden = self.act_fn(self.fc_embed_state_action(T.cat([_state, actions[t]], dim=1)))
                beliefs[t + 1] = self.rnn(hidden, beliefs[t])
                # Compute state prior by applying transition dynamics
                hidden = self.act_fn(self.fc_embed_belief_prior(beliefs[t + 1]))
                prior_means[t + 1], _prior_std_dev = T.chunk(self.fc_state_prior(hidden), 2, dim=1)
                prior_std_devs[t + 1] = F.softplus(_prior_std_dev) + self.min_std_dev
                prior_states[t + 1] = prior_means[t + 1] + prior_std_devs[t + 1] * prior_noise[t]
                if observations is not None:
                    # Compute state posterior by applying transition dynamics and using current observation
                    t_ = t - 1  # Use t_ to deal with different time indexing for observations
                    hidden = self.act_fn(self.fc_embed_belief_posterior(
                        T.cat([beliefs[t + 1], observations[t_ + 1]], dim=1)))
                    posterior_means[t + 1], _posterior_std_dev = T.chunk(self.fc_state_posterior(hidden), 2, dim=1)
                    posterior_std_devs[t + 1] = F.softplus(_posterior_std_dev) + self.min_std_dev
                    posterior_states[t + 1] = posterior_means[t + 1] + posterior_std_devs[t + 1] * posterior_noise[t]
            # Return new hidden states
            hidden = [T.stack(beliefs[1:], dim=0), T.stack(prior_states[1:], dim=0),
                      T.stack(prior_means[1:], dim=0), T.stack(prior_std_devs[1:], dim=0)]
            if observations is not None:
                hidden += [T.stack(posterior_states[1:], dim=0), T.stack(posterior_means[1:], dim=0),
                           T.stack(posterior_std_devs[1:], dim=0)]
            return hidden

    class SymbolicObservationModel(nn.Module):
        def __init__(self, observation_size, belief_size, state_size, embedding_size, activation_function='relu'):
            super().__init__()
            self.act_fn = getattr(F, activation_function)
            self.fc1 = nn.Linear(belief_size + state_size, embedding_size)
            self.fc2 = nn.Linear(embedding_size, embedding_size)
            self.fc3 = nn.Linear(embedding_size, observation_size)

        def forward(self, belief, state):
            hidden = self.act_fn(self.fc1(T.cat([belief, state], dim=1)))
            hidden = self.act_fn(self.fc2(hidden))
            observation = self.fc3(hidden)
            return observation

    class RewardModel(nn.Module):
        def __init__(self, belief_size, state_size, hidden_size, activation_function='relu'):
            super().__init__()
            self.act_fn = getattr(F, activation_function)
            self.fc1 = nn.Linear(belief_size + state_size, hidden_size)
            self.fc2 = nn.Linear(hidden_size, hidden_size)
            self.fc3 = nn.Linear(hidden_size, 1)

        def forward(self, belief, state):
            x = T.cat([belief, state], dim=1)
            hidden = self.act_fn(self.fc1(x))
            hidden = self.act_fn(self.fc2(hidden))
            reward = self.fc3(hidden).squeeze(dim=1)
            return reward

    class ValueModel(RewardModel):
        pass

    class ActorModel(nn.Module):
        def __init__(self, belief_size, state_size, hidden_size, action_size, dist='tanh_normal',
                     activation_function='elu', min_std=1e-4, init_std=5, mean_scale=5):
            super().__init__()
            self.act_fn = getattr(F, activation_function)
            self.fc1 = nn.Linear(belief_size + state_size, hidden_size)
            self.fc2 = nn.Linear(hidden_size, hidden_size)
            self.fc5 = nn.Linear(hidden_size, 2 * action_size)
            self._dist = dist
            self._min_std = min_std
            self._init_std = init_std
            self._mean_scale = mean_scale

        def forward(self, belief, state):
            raw_init_std = T.log(T.exp(T.tensor(self._init_std, dtype=T.float32)) - 1)
            x = T.cat([belief, state], dim=1)
            hidden = self.act_fn(self.fc1(x))
            hidden = self.act_fn(self.fc2(hidden))
            action = self.fc5(hidden).squeeze(dim=1)
            action_mean, action_std_dev = T.chunk(action, 2, dim=1)
            action_mean = self._mean_scale * T.tanh(action_mean / self._mean_scale)
            action_std = F.softplus(action_std_dev + raw_init_std) + self._min_std
            return action_mean, action_std

        def get_action(self, belief, state, eps):
            # The original samples TransformedDistribution(Normal(mean, std), TanhBijector()).rsample(): the
            # same reparameterised draw, tanh(mean + std * eps), with eps passed in.
            action_mean, action_std = self.forward(belief, state)
            return T.tanh(action_mean + action_std * eps)

    class SymbolicEncoder(nn.Module):
        def __init__(self, observation_size, embedding_size, activation_function='relu'):
            super().__init__()
            self.act_fn = getattr(F, activation_function)
            self.fc1 = nn.Linear(observation_size, embedding_size)
            self.fc2 = nn.Linear(embedding_size, embedding_size)
            self.fc3 = nn.Linear(embedding_size, embedding_size)

        def forward(self, observation):
            hidden = self.act_fn(self.fc1(observation))
            hidden = self.act_fn(self.fc2(hidden))
            hidden = self.fc3(hidden)
            return hidden

    class Dreamer(nn.Module):
        def __init__(self):
            super().__init__()
            self.transition_model = TransitionModel(D_BELIEF, D_STATE, D_ACT, D_HIDDEN, D_EMBED)
            self.observation_model = SymbolicObservationModel(D_OBS, D_BELIEF, D_STATE, D_EMBED)
            self.reward_model = RewardModel(D_BELIEF, D_STATE, D_HIDDEN)
            self.encoder = SymbolicEncoder(D_OBS, D_EMBED)
            self.actor_model = ActorModel(D_BELIEF, D_STATE, D_HIDDEN, D_ACT)
            self.value_model = ValueModel(D_BELIEF, D_STATE, D_HIDDEN)

    return Dreamer()


def dreamer_utils(T):
    F = T.nn.functional

    # Wraps the input tuple for a function to process a time x batch x features sequence in batch x features
    # (assumes one output)
    def bottle(f, x_tuple):
        x_sizes = tuple(map(lambda x: x.size(), x_tuple))
        y = f(*map(lambda x: x[0].view(x[1][0] * x[1][1], *x[1][2:]), zip(x_tuple, x_sizes)))
        y_size = y.size()
        output = y.view(x_sizes[0][0], x_sizes[0][1], *y_size[1:])
        return output

    def get_parameters(modules):
        model_parameters = []
        for module in modules:
            model_parameters += list(module.parameters())
        return model_parameters

    class FreezeParameters:
        def __init__(self, modules):
            self.modules = modules
            self.param_states = [p.requires_grad for p in get_parameters(self.modules)]

        def __enter__(self):
            for param in get_parameters(self.modules):
                param.requires_grad = False

        def __exit__(self, exc_type, exc_val, exc_tb):
            for i, param in enumerate(get_parameters(self.modules)):
                param.requires_grad = self.param_states[i]

    def imagine_ahead(prev_state, prev_belief, policy, transition_model, planning_horizon, action_noise,
                      prior_noise):
        flatten = lambda x: x.view([-1] + list(x.size()[2:]))  # noqa: E731
        prev_belief = flatten(prev_belief)
        prev_state = flatten(prev_state)
        # Create lists for hidden states (cannot use single tensor as buffer because autograd won't work
        # with inplace writes)
        steps = planning_horizon
        beliefs, prior_states, prior_means, prior_std_devs = [T.empty(0)] * steps, [T.empty(0)] * steps, \
            [T.empty(0)] * steps, [T.empty(0)] * steps
        beliefs[0], prior_states[0] = prev_belief, prev_state
        # Loop over time sequence
        for t in range(steps - 1):
            _state = prior_states[t]
            actions = policy.get_action(beliefs[t].detach(), _state.detach(), action_noise[t])
            # Compute belief (deterministic hidden state)
            hidden = transition_model.act_fn(transition_model.fc_embed_state_action(T.cat([_state, actions], dim=1)))
            beliefs[t + 1] = transition_model.rnn(hidden, beliefs[t])
            # Compute state prior by applying transition dynamics
            hidden = transition_model.act_fn(transition_model.fc_embed_belief_prior(beliefs[t + 1]))
            prior_means[t + 1], _prior_std_dev = T.chunk(transition_model.fc_state_prior(hidden), 2, dim=1)
            prior_std_devs[t + 1] = F.softplus(_prior_std_dev) + transition_model.min_std_dev
            prior_states[t + 1] = prior_means[t + 1] + prior_std_devs[t + 1] * prior_noise[t]
        # Return new hidden states
        imagined_traj = [T.stack(beliefs, dim=0), T.stack(prior_states, dim=0), T.stack(prior_means[1:], dim=0),
                         T.stack(prior_std_devs[1:], dim=0)]
        return imagined_traj

    def lambda_return(imged_reward, value_pred, bootstrap, discount=0.99, lambda_=0.95):
        # Setting lambda=1 gives a discounted Monte Carlo return.
        # Setting lambda=0 gives a fixed 1-step return.
        next_values = T.cat([value_pred[1:], bootstrap[None]], 0)
        discount_tensor = discount * T.ones_like(imged_reward)  # pcont
        inputs = imged_reward + discount_tensor * next_values * (1 - lambda_)
        last = bootstrap
        indices = reversed(range(len(inputs)))
        outputs = []
        for index in indices:
            inp, disc = inputs[index], discount_tensor[index]
            last = inp + disc * lambda_ * last
            outputs.append(last)
        outputs = list(reversed(outputs))
        outputs = T.stack(outputs, 0)
        returns = outputs
        return returns

    return bottle, FreezeParameters, imagine_ahead, lambda_return


def train_dreamer_v1(T, device, init, batches, free_nats=1.0, grad_clip_norm=10.0):
    F = T.nn.functional
    Normal, kl_divergence = T.distributions.Normal, T.distributions.kl_divergence
    device = device_of(T, device)
    bottle, FreezeParameters, imagine_ahead, lambda_return = dreamer_utils(T)
    dreamer = ported_model(T, dreamer_v1_models, init, device)
    transition_model, observation_model, reward_model, encoder = (
        dreamer.transition_model, dreamer.observation_model, dreamer.reward_model, dreamer.encoder)
    actor_model, value_model = dreamer.actor_model, dreamer.value_model
    # The original lists each model's `.modules` attribute (its Linear layers); the modules themselves hold
    # the same parameters.
    model_modules = [transition_model, encoder, observation_model, reward_model]
    param_list = list(transition_model.parameters()) + list(observation_model.parameters()) + \
        list(reward_model.parameters()) + list(encoder.parameters())
    model_optimizer = T.optim.Adam(param_list, lr=3e-3, eps=1e-4)
    actor_optimizer = T.optim.Adam(actor_model.parameters(), lr=3e-3, eps=1e-4)
    value_optimizer = T.optim.Adam(value_model.parameters(), lr=3e-3, eps=1e-4)
    free_nats = T.full((1,), free_nats, device=device)  # Allowed deviation in KL divergence
    losses = []
    for data, noise in batches:
        observations, actions, rewards, nonterminals = (T.as_tensor(d, dtype=T.float32, device=device) for d in data)
        prior_noise, posterior_noise, action_noise, imagine_noise = (
            T.as_tensor(n, dtype=T.float32, device=device) for n in noise)
        # Create initial belief and state for time t = 0
        init_belief = T.zeros(D_B, D_BELIEF, device=device)
        init_state = T.zeros(D_B, D_STATE, device=device)
        # Update belief/state using posterior from previous belief/state, previous action and current observation
        (beliefs, prior_states, prior_means, prior_std_devs, posterior_states, posterior_means,
         posterior_std_devs) = transition_model(init_state, actions[:-1], init_belief,
                                                bottle(encoder, (observations[1:], )), nonterminals[:-1],
                                                prior_noise=prior_noise, posterior_noise=posterior_noise)
        # Calculate observation likelihood, reward likelihood and KL losses (for t = 0 only for latent
        # overshooting); sum over final dims, average over batch and time (original implementation, though
        # paper seems to miss 1/T scaling?)
        observation_loss = F.mse_loss(bottle(observation_model, (beliefs, posterior_states)), observations[1:],
                                      reduction='none').sum(dim=2).mean(dim=(0, 1))
        reward_loss = F.mse_loss(bottle(reward_model, (beliefs, posterior_states)), rewards[:-1],
                                 reduction='none').mean(dim=(0, 1))
        # transition loss
        div = kl_divergence(Normal(posterior_means, posterior_std_devs), Normal(prior_means, prior_std_devs)).sum(dim=2)
        # Note that normalisation by overshooting distance and weighting by overshooting distance cancel out
        kl_loss = T.max(div, free_nats).mean(dim=(0, 1))
        # Update model parameters
        model_optimizer.zero_grad()
        (observation_loss + reward_loss + kl_loss).backward()
        T.nn.utils.clip_grad_norm_(param_list, grad_clip_norm, norm_type=2)
        model_optimizer.step()

        # Dreamer implementation: actor loss calculation and optimization
        with T.no_grad():
            actor_states = posterior_states.detach()
            actor_beliefs = beliefs.detach()
        with FreezeParameters(model_modules):
            imagination_traj = imagine_ahead(actor_states, actor_beliefs, actor_model, transition_model, D_HORIZON,
                                             action_noise, imagine_noise)
        imged_beliefs, imged_prior_states, imged_prior_means, imged_prior_std_devs = imagination_traj
        with FreezeParameters(model_modules + [value_model]):
            imged_reward = bottle(reward_model, (imged_beliefs, imged_prior_states))
            value_pred = bottle(value_model, (imged_beliefs, imged_prior_states))
        returns = lambda_return(imged_reward, value_pred, bootstrap=value_pred[-1], discount=0.99, lambda_=0.95)
        actor_loss = -T.mean(returns)
        # Update model parameters
        actor_optimizer.zero_grad()
        actor_loss.backward()
        T.nn.utils.clip_grad_norm_(actor_model.parameters(), grad_clip_norm, norm_type=2)
        actor_optimizer.step()
        if len(losses) == 0:  # frozen: the actor's loss gave the value model no gradient
            assert all(p.grad is None for p in value_model.parameters())

        # Dreamer implementation: value loss calculation and optimization
        with T.no_grad():
            value_beliefs = imged_beliefs.detach()
            value_prior_states = imged_prior_states.detach()
            target_return = returns.detach()
        # detach the input tensor from the transition network.
        value_dist = Normal(bottle(value_model, (value_beliefs, value_prior_states)), 1)
        value_loss = -value_dist.log_prob(target_return).mean(dim=(0, 1))
        # Update model parameters
        value_optimizer.zero_grad()
        value_loss.backward()
        T.nn.utils.clip_grad_norm_(value_model.parameters(), grad_clip_norm, norm_type=2)
        value_optimizer.step()
        losses += [observation_loss.item(), reward_loss.item(), kl_loss.item(), div.mean().item(),
                   actor_loss.item(), value_loss.item()]
        losses += returns.flatten().tolist() + imged_prior_std_devs.flatten().tolist()
    return losses, numpy_state(dreamer)


def dreamer_v1_batches(rng, steps=2):
    n = D_HORIZON
    out = []
    for _ in range(steps):
        data = (rng.standard_normal((D_CHUNK, D_B, D_OBS)), rng.uniform(-1, 1, (D_CHUNK, D_B, D_ACT)),
                rng.standard_normal((D_CHUNK, D_B)), (rng.random((D_CHUNK, D_B, 1)) > 0.1) * 1.0)
        noise = (rng.standard_normal((D_CHUNK - 1, D_B, D_STATE)), rng.standard_normal((D_CHUNK - 1, D_B, D_STATE)),
                 rng.standard_normal((n - 1, (D_CHUNK - 1) * D_B, D_ACT)),
                 rng.standard_normal((n - 1, (D_CHUNK - 1) * D_B, D_STATE)))
        out.append((data, noise))
    return out


def test_dreamer_v1_rssm(device):
    torch.manual_seed(2)
    run_both(train_dreamer_v1, device, numpy_state(dreamer_v1_models(torch)),
             dreamer_v1_batches(np.random.default_rng(2)))


# ---- 4. DreamerV2 (RajGhugare19/dreamerv2): discrete RSSM, straight-through one-hot latents, KL balancing
#         with free nats, Independent Normal/Bernoulli heads, REINFORCE actor on imagined lambda-returns ------

V_OBS, V_ACT, V_DETER, V_CAT, V_CLS, V_NODE, V_EMBED = 5, 3, 8, 3, 4, 10, 8
V_STOCH = V_CAT * V_CLS
V_SEQ, V_B, V_HORIZON = 4, 3, 3

RSSMDiscState = namedtuple('RSSMDiscState', ['logit', 'stoch', 'deter'])


def sample_one_hot(T, logits, u):
    """OneHotCategorical(logits=logits).sample() in the original; the uniforms u come in and the same draw is
    made by Gumbel-max."""
    index = (logits - T.log(-T.log(u))).argmax(-1)
    return T.nn.functional.one_hot(index, logits.shape[-1]).to(logits.dtype)


def dreamer_v2_models(T):
    nn, td = T.nn, T.distributions

    class DenseModel(nn.Module):
        def __init__(self, output_shape, input_size, info):
            super().__init__()
            self._output_shape = output_shape
            self._input_size = input_size
            self._layers = info['layers']
            self._node_size = info['node_size']
            self.activation = info['activation']
            self.dist = info['dist']
            self.model = self.build_model()

        def build_model(self):
            model = [nn.Linear(self._input_size, self._node_size)]
            model += [self.activation()]
            for i in range(self._layers - 1):
                model += [nn.Linear(self._node_size, self._node_size)]
                model += [self.activation()]
            model += [nn.Linear(self._node_size, int(np.prod(self._output_shape)))]
            return nn.Sequential(*model)

        def forward(self, input):
            dist_inputs = self.model(input)
            if self.dist == 'normal':
                return td.independent.Independent(td.Normal(dist_inputs, 1), len(self._output_shape))
            if self.dist == 'binary':
                return td.independent.Independent(td.Bernoulli(logits=dist_inputs), len(self._output_shape))
            if self.dist is None:
                return dist_inputs
            raise NotImplementedError(self._dist)

    class DiscreteActionModel(nn.Module):
        def __init__(self, action_size, deter_size, stoch_size, node_size=V_NODE, layers=2):
            super().__init__()
            self.action_size, self.deter_size, self.stoch_size = action_size, deter_size, stoch_size
            self.node_size, self.layers, self.act_fn = node_size, layers, nn.ELU
            self.model = self._build_model()

        def _build_model(self):
            model = [nn.Linear(self.deter_size + self.stoch_size, self.node_size)]
            model += [self.act_fn()]
            for i in range(1, self.layers):
                model += [nn.Linear(self.node_size, self.node_size)]
                model += [self.act_fn()]
            model += [nn.Linear(self.node_size, self.action_size)]
            return nn.Sequential(*model)

        def forward(self, model_state, u):
            action_dist = self.get_action_dist(model_state)
            action = sample_one_hot(T, action_dist.logits, u)  # action_dist.sample()
            action = action + action_dist.probs - action_dist.probs.detach()
            return action, action_dist

        def get_action_dist(self, modelstate):
            logits = self.model(modelstate)
            return td.OneHotCategorical(logits=logits)

    class RSSM(nn.Module):
        def __init__(self, action_size, deter_size, stoch_size, node_size, embedding_size, category_size,
                     class_size):
            super().__init__()
            self.action_size, self.deter_size, self.stoch_size = action_size, deter_size, stoch_size
            self.node_size, self.embedding_size = node_size, embedding_size
            self.category_size, self.class_size = category_size, class_size
            self.act_fn = nn.ELU
            self.rnn = nn.GRUCell(self.deter_size, self.deter_size)
            self.fc_embed_state_action = nn.Sequential(nn.Linear(self.stoch_size + self.action_size, self.deter_size),
                                                       self.act_fn())
            self.fc_prior = nn.Sequential(nn.Linear(self.deter_size, self.node_size), self.act_fn(),
                                          nn.Linear(self.node_size, self.stoch_size))
            self.fc_posterior = nn.Sequential(nn.Linear(self.deter_size + self.embedding_size, self.node_size),
                                              self.act_fn(), nn.Linear(self.node_size, self.stoch_size))

        def rssm_imagine(self, prev_action, prev_rssm_state, u, nonterms=True):
            state_action_embed = self.fc_embed_state_action(T.cat([prev_rssm_state.stoch * nonterms, prev_action],
                                                                  dim=-1))
            deter_state = self.rnn(state_action_embed, prev_rssm_state.deter * nonterms)
            prior_logit = self.fc_prior(deter_state)
            stats = {'logit': prior_logit}
            prior_stoch_state = self.get_stoch_state(stats, u)
            return RSSMDiscState(prior_logit, prior_stoch_state, deter_state)

        def rollout_imagination(self, horizon, actor, prev_rssm_state, draw):
            rssm_state = prev_rssm_state
            next_rssm_states = []
            action_entropy = []
            imag_log_probs = []
            for t in range(horizon):
                action, action_dist = actor((self.get_model_state(rssm_state)).detach(), draw())
                rssm_state = self.rssm_imagine(action, rssm_state, draw())
                next_rssm_states.append(rssm_state)
                action_entropy.append(action_dist.entropy())
                imag_log_probs.append(action_dist.log_prob(T.round(action.detach())))
            next_rssm_states = self.rssm_stack_states(next_rssm_states, dim=0)
            action_entropy = T.stack(action_entropy, dim=0)
            imag_log_probs = T.stack(imag_log_probs, dim=0)
            return next_rssm_states, imag_log_probs, action_entropy

        def rssm_observe(self, obs_embed, prev_action, prev_nonterm, prev_rssm_state, draw):
            prior_rssm_state = self.rssm_imagine(prev_action, prev_rssm_state, draw(), prev_nonterm)
            deter_state = prior_rssm_state.deter
            x = T.cat([deter_state, obs_embed], dim=-1)
            posterior_logit = self.fc_posterior(x)
            stats = {'logit': posterior_logit}
            posterior_stoch_state = self.get_stoch_state(stats, draw())
            posterior_rssm_state = RSSMDiscState(posterior_logit, posterior_stoch_state, deter_state)
            return prior_rssm_state, posterior_rssm_state

        def rollout_observation(self, seq_len, obs_embed, action, nonterms, prev_rssm_state, draw):
            priors = []
            posteriors = []
            for t in range(seq_len):
                prev_action = action[t] * nonterms[t]
                prior_rssm_state, posterior_rssm_state = self.rssm_observe(obs_embed[t], prev_action, nonterms[t],
                                                                           prev_rssm_state, draw)
                priors.append(prior_rssm_state)
                posteriors.append(posterior_rssm_state)
                prev_rssm_state = posterior_rssm_state
            prior = self.rssm_stack_states(priors, dim=0)
            post = self.rssm_stack_states(posteriors, dim=0)
            return prior, post

        def get_model_state(self, rssm_state):
            return T.cat((rssm_state.deter, rssm_state.stoch), dim=-1)

        def rssm_seq_to_batch(self, rssm_state, batch_size, seq_len):
            def seq_to_batch(sequence_data, batch_size, seq_len):
                shp = tuple(sequence_data.shape)
                return T.reshape(sequence_data, [shp[0] * shp[1], *shp[2:]])
            return RSSMDiscState(seq_to_batch(rssm_state.logit[:seq_len], batch_size, seq_len),
                                 seq_to_batch(rssm_state.stoch[:seq_len], batch_size, seq_len),
                                 seq_to_batch(rssm_state.deter[:seq_len], batch_size, seq_len))

        def rssm_detach(self, rssm_state):
            return RSSMDiscState(rssm_state.logit.detach(), rssm_state.stoch.detach(), rssm_state.deter.detach())

        def rssm_stack_states(self, rssm_states, dim):
            return RSSMDiscState(T.stack([state.logit for state in rssm_states], dim=dim),
                                 T.stack([state.stoch for state in rssm_states], dim=dim),
                                 T.stack([state.deter for state in rssm_states], dim=dim))

        def get_dist(self, rssm_state):
            shape = rssm_state.logit.shape
            logit = T.reshape(rssm_state.logit, shape=(*shape[:-1], self.category_size, self.class_size))
            return td.Independent(td.OneHotCategoricalStraightThrough(logits=logit), 1)

        def get_stoch_state(self, stats, u):
            logit = stats['logit']
            shape = logit.shape
            logit = T.reshape(logit, shape=(*shape[:-1], self.category_size, self.class_size))
            dist = td.OneHotCategorical(logits=logit)
            stoch = sample_one_hot(T, dist.logits, u)  # dist.sample()
            stoch += dist.probs - dist.probs.detach()
            return T.flatten(stoch, start_dim=-2, end_dim=-1)

        def _init_rssm_state(self, batch_size, **kwargs):
            return RSSMDiscState(T.zeros(batch_size, self.stoch_size, **kwargs),
                                 T.zeros(batch_size, self.stoch_size, **kwargs),
                                 T.zeros(batch_size, self.deter_size, **kwargs))

    class WorldAndBehaviour(nn.Module):
        def __init__(self):
            super().__init__()
            model_size = V_DETER + V_STOCH
            dense = dict(layers=2, node_size=V_NODE, activation=nn.ELU)
            self.RSSM = RSSM(V_ACT, V_DETER, V_STOCH, V_NODE, V_EMBED, V_CAT, V_CLS)
            self.ObsEncoder = nn.Sequential(nn.Linear(V_OBS, V_EMBED), nn.ELU(), nn.Linear(V_EMBED, V_EMBED))
            self.ObsDecoder = DenseModel((V_OBS,), model_size, dict(dense, dist='normal'))
            self.RewardDecoder = DenseModel((1,), model_size, dict(dense, dist='normal'))
            self.DiscountModel = DenseModel((1,), model_size, dict(dense, dist='binary'))
            self.ActionModel = DiscreteActionModel(V_ACT, V_DETER, V_STOCH)
            self.ValueModel = DenseModel((1,), model_size, dict(dense, dist='normal'))
            self.TargetValueModel = DenseModel((1,), model_size, dict(dense, dist='normal'))
            self.TargetValueModel.load_state_dict(self.ValueModel.state_dict())

    return WorldAndBehaviour()


def train_dreamer_v2(T, device, init, batches, kl_balance_scale=0.8, free_nats=0.5, kl_scale=0.1,
                     discount_scale=5.0, discount=0.99, lambda_=0.95, actor_entropy_scale=1e-3,
                     slow_target_fraction=0.5, grad_clip_norm=10.0):
    kl_divergence = T.distributions.kl_divergence
    _, FreezeParameters, _, _ = dreamer_utils(T)
    device = device_of(T, device)
    agent = ported_model(T, dreamer_v2_models, init, device)
    RSSM, ObsEncoder, ObsDecoder, RewardDecoder, DiscountModel = (
        agent.RSSM, agent.ObsEncoder, agent.ObsDecoder, agent.RewardDecoder, agent.DiscountModel)
    ActionModel, ValueModel, TargetValueModel = agent.ActionModel, agent.ValueModel, agent.TargetValueModel
    world_list = [ObsEncoder, RSSM, RewardDecoder, ObsDecoder, DiscountModel]
    action_list, value_list = [ActionModel], [ValueModel]

    def get_parameters(modules):
        return [p for m in modules for p in m.parameters()]

    model_optimizer = T.optim.Adam(get_parameters(world_list), 2e-3)
    actor_optimizer = T.optim.Adam(get_parameters(action_list), 4e-3)
    value_optimizer = T.optim.Adam(get_parameters(value_list), 1e-3)

    def compute_return(reward, value, discount, bootstrap, lambda_):
        """Compute the discounted reward for a batch of data."""
        next_values = T.cat([value[1:], bootstrap[None]], 0)
        target = reward + discount * next_values * (1 - lambda_)
        timesteps = list(range(reward.shape[0] - 1, -1, -1))
        outputs = []
        accumulated_reward = bootstrap
        for t in timesteps:
            inp = target[t]
            discount_factor = discount[t]
            accumulated_reward = inp + discount_factor * lambda_ * accumulated_reward
            outputs.append(accumulated_reward)
        returns = T.flip(T.stack(outputs), [0])
        return returns

    def _kl_loss(prior, posterior):
        prior_dist = RSSM.get_dist(prior)
        post_dist = RSSM.get_dist(posterior)
        alpha = kl_balance_scale
        kl_lhs = T.mean(kl_divergence(RSSM.get_dist(RSSM.rssm_detach(posterior)), prior_dist))
        kl_rhs = T.mean(kl_divergence(post_dist, RSSM.get_dist(RSSM.rssm_detach(prior))))
        kl_lhs = T.max(kl_lhs, kl_lhs.new_full(kl_lhs.size(), free_nats))
        kl_rhs = T.max(kl_rhs, kl_rhs.new_full(kl_rhs.size(), free_nats))
        kl_loss = alpha * kl_lhs + (1 - alpha) * kl_rhs
        return prior_dist, post_dist, kl_loss

    def representation_loss(obs, actions, rewards, nonterms, draw):
        embed = ObsEncoder(obs)  # t to t+seq_len
        prev_rssm_state = RSSM._init_rssm_state(V_B, device=device)
        prior, posterior = RSSM.rollout_observation(V_SEQ, embed, actions, nonterms, prev_rssm_state, draw)
        post_modelstate = RSSM.get_model_state(posterior)  # t to t+seq_len
        obs_dist = ObsDecoder(post_modelstate[:-1])  # t to t+seq_len-1
        reward_dist = RewardDecoder(post_modelstate[:-1])  # t to t+seq_len-1
        pcont_dist = DiscountModel(post_modelstate[:-1])  # t to t+seq_len-1
        obs_loss = -T.mean(obs_dist.log_prob(obs[:-1]))
        reward_loss = -T.mean(reward_dist.log_prob(rewards[1:]))
        pcont_loss = -T.mean(pcont_dist.log_prob(nonterms[1:].float()))
        prior_dist, post_dist, div = _kl_loss(prior, posterior)
        model_loss = kl_scale * div + reward_loss + obs_loss + discount_scale * pcont_loss
        return model_loss, div, obs_loss, reward_loss, pcont_loss, prior_dist, post_dist, posterior

    def _actor_loss(imag_reward, imag_value, discount_arr, imag_log_prob, policy_entropy):
        lambda_returns = compute_return(imag_reward[:-1], imag_value[:-1], discount_arr[:-1],
                                        bootstrap=imag_value[-1], lambda_=lambda_)
        advantage = (lambda_returns - imag_value[:-1]).detach()
        objective = imag_log_prob[1:].unsqueeze(-1) * advantage
        discount_arr = T.cat([T.ones_like(discount_arr[:1]), discount_arr[1:]])
        discount = T.cumprod(discount_arr[:-1], 0)
        policy_entropy = policy_entropy[1:].unsqueeze(-1)
        actor_loss = -T.sum(T.mean(discount * (objective + actor_entropy_scale * policy_entropy), dim=1))
        return actor_loss, discount, lambda_returns

    def _value_loss(imag_modelstates, discount, lambda_returns):
        with T.no_grad():
            value_modelstates = imag_modelstates[:-1].detach()
            value_discount = discount.detach()
            value_target = lambda_returns.detach()
        value_dist = ValueModel(value_modelstates)
        value_loss = -T.mean(value_discount * value_dist.log_prob(value_target).unsqueeze(-1))
        return value_loss

    def actorcritc_loss(posterior, draw):
        with T.no_grad():
            batched_posterior = RSSM.rssm_detach(RSSM.rssm_seq_to_batch(posterior, V_B, V_SEQ - 1))
        with FreezeParameters(world_list):
            imag_rssm_states, imag_log_prob, policy_entropy = RSSM.rollout_imagination(V_HORIZON, ActionModel,
                                                                                       batched_posterior, draw)
        imag_modelstates = RSSM.get_model_state(imag_rssm_states)
        with FreezeParameters(world_list + value_list + [TargetValueModel] + [DiscountModel]):
            imag_reward_dist = RewardDecoder(imag_modelstates)
            imag_reward = imag_reward_dist.mean
            imag_value_dist = TargetValueModel(imag_modelstates)
            imag_value = imag_value_dist.mean
            discount_dist = DiscountModel(imag_modelstates)
            discount_arr = discount * T.round(discount_dist.base_dist.probs)  # mean = nonterminal
        actor_loss, discount_w, lambda_returns = _actor_loss(imag_reward, imag_value, discount_arr, imag_log_prob,
                                                             policy_entropy)
        value_loss = _value_loss(imag_modelstates, discount_w, lambda_returns)
        return actor_loss, value_loss, lambda_returns

    losses = []
    for (obs, actions, rewards, terms), uniforms in batches:
        draws = iter(uniforms)

        def draw():
            return T.as_tensor(next(draws), dtype=T.float32, device=device)

        obs = T.tensor(obs, dtype=T.float32).to(device)  # t, t+seq_len
        actions = T.tensor(actions, dtype=T.float32).to(device)  # t-1, t+seq_len-1
        rewards = T.tensor(rewards, dtype=T.float32).to(device).unsqueeze(-1)  # t-1 to t+seq_len-1
        nonterms = T.tensor(1 - terms, dtype=T.float32).to(device).unsqueeze(-1)  # t-1 to t+seq_len-1
        model_loss, kl_loss, obs_loss, reward_loss, pcont_loss, prior_dist, post_dist, posterior = \
            representation_loss(obs, actions, rewards, nonterms, draw)
        model_optimizer.zero_grad()
        model_loss.backward()
        grad_norm_model = T.nn.utils.clip_grad_norm_(get_parameters(world_list), grad_clip_norm)
        model_optimizer.step()

        actor_loss, value_loss, lambda_returns = actorcritc_loss(posterior, draw)
        actor_optimizer.zero_grad()
        value_optimizer.zero_grad()
        actor_loss.backward()
        value_loss.backward()
        grad_norm_actor = T.nn.utils.clip_grad_norm_(get_parameters(action_list), grad_clip_norm)
        grad_norm_value = T.nn.utils.clip_grad_norm_(get_parameters(value_list), grad_clip_norm)
        actor_optimizer.step()
        value_optimizer.step()
        # update_target: the original copies through target_param.data (a raw array in raygrad: README)
        with T.no_grad():
            mix = slow_target_fraction
            for param, target_param in zip(ValueModel.parameters(), TargetValueModel.parameters()):
                target_param.copy_(mix * param + (1 - mix) * target_param)
        prior_ent = T.mean(prior_dist.entropy())
        post_ent = T.mean(post_dist.entropy())
        losses += [model_loss.item(), kl_loss.item(), obs_loss.item(), reward_loss.item(), pcont_loss.item(),
                   actor_loss.item(), value_loss.item(), prior_ent.item(), post_ent.item(), grad_norm_model.item(),
                   grad_norm_actor.item(), grad_norm_value.item()]
        losses += lambda_returns.flatten().tolist()
        assert next(draws, None) is None
    return losses, numpy_state(agent)


def dreamer_v2_batches(rng, steps=2):
    n_imag = V_B * (V_SEQ - 1)
    out = []
    for _ in range(steps):
        actions = np.eye(V_ACT)[rng.integers(0, V_ACT, (V_SEQ, V_B))]
        data = (rng.standard_normal((V_SEQ, V_B, V_OBS)), actions, rng.standard_normal((V_SEQ, V_B)),
                (rng.random((V_SEQ, V_B)) < 0.2) * 1.0)
        uniforms = []
        for _ in range(V_SEQ):  # prior, then posterior latents
            uniforms += [rng.random((V_B, V_CAT, V_CLS)), rng.random((V_B, V_CAT, V_CLS))]
        for _ in range(V_HORIZON):  # action, then prior latent
            uniforms += [rng.random((n_imag, V_ACT)), rng.random((n_imag, V_CAT, V_CLS))]
        out.append((data, uniforms))
    return out


def test_dreamer_v2_discrete_rssm(device):
    torch.manual_seed(3)
    run_both(train_dreamer_v2, device, numpy_state(dreamer_v2_models(torch)),
             dreamer_v2_batches(np.random.default_rng(3)))


def test_one_hot_categorical_straight_through(device):
    """DreamerV2 ports build their latent distribution as td.OneHotCategoricalStraightThrough: rsample() is
    the one-hot sample plus probs - probs.detach(), so gradients reach the logits; the KL is OneHotCategorical's."""
    logits_np = np.random.default_rng(4).standard_normal((5, 4)).astype(np.float32)
    td = tensor.distributions
    logits = tensor.tensor(logits_np, device=device, requires_grad=True)
    dist = td.OneHotCategoricalStraightThrough(logits=logits)
    sample = dist.rsample()
    assert sample.requires_grad and sample.shape == (5, 4)
    np.testing.assert_array_equal(sample.detach().cpu().numpy().sum(-1), np.ones(5))
    (sample * tensor.arange(4.0, device=device)).sum().backward()
    t_logits = torch.tensor(logits_np, requires_grad=True)
    t_dist = torch.distributions.OneHotCategoricalStraightThrough(logits=t_logits)
    (t_dist.probs * torch.arange(4.0)).sum().backward()  # the straight-through gradient is probs' gradient
    np.testing.assert_allclose(logits.grad.cpu().numpy(), t_logits.grad.numpy(), rtol=1e-5, atol=1e-6)
    other = torch.distributions.OneHotCategoricalStraightThrough(logits=t_logits.detach().flip(0))
    kl = td.kl_divergence(dist, td.OneHotCategoricalStraightThrough(logits=logits.detach().flip(0)))
    np.testing.assert_allclose(kl.detach().cpu().numpy(), torch.distributions.kl_divergence(t_dist, other).detach()
                               .numpy(), rtol=1e-5, atol=1e-6)


# ---- 5. AlphaZero (junxiaosong/AlphaZero_Gomoku policy_value_net_pytorch.py / train.py): policy-value net
#         on MCTS visit-count targets, Variable, implicit-dim log_softmax, KL-adaptive learning rate --------
# (alpha-zero-general's OthelloNNet puts biased convolutions before BatchNorm and trains them with Adam: their
# gradients are pure rounding noise that Adam scales up to full steps, so no two libraries agree on them.)

Z_W = Z_H = 5


def alphazero_net(T):
    nn, F = T.nn, T.nn.functional

    class Net(nn.Module):
        """policy-value network module"""

        def __init__(self, board_width, board_height):
            super(Net, self).__init__()
            self.board_width = board_width
            self.board_height = board_height
            # common layers
            self.conv1 = nn.Conv2d(4, 8, kernel_size=3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, kernel_size=3, padding=1)
            self.conv3 = nn.Conv2d(8, 8, kernel_size=3, padding=1)
            # action policy layers
            self.act_conv1 = nn.Conv2d(8, 4, kernel_size=1)
            self.act_fc1 = nn.Linear(4 * board_width * board_height, board_width * board_height)
            # state value layers
            self.val_conv1 = nn.Conv2d(8, 2, kernel_size=1)
            self.val_fc1 = nn.Linear(2 * board_width * board_height, 16)
            self.val_fc2 = nn.Linear(16, 1)

        def forward(self, state_input):
            # common layers
            x = F.relu(self.conv1(state_input))
            x = F.relu(self.conv2(x))
            x = F.relu(self.conv3(x))
            # action policy layers
            x_act = F.relu(self.act_conv1(x))
            x_act = x_act.view(-1, 4 * self.board_width * self.board_height)
            x_act = F.log_softmax(self.act_fc1(x_act))
            # state value layers
            x_val = F.relu(self.val_conv1(x))
            x_val = x_val.view(-1, 2 * self.board_width * self.board_height)
            x_val = F.relu(self.val_fc1(x_val))
            x_val = F.tanh(self.val_fc2(x_val))
            return x_act, x_val

    return Net(Z_W, Z_H)


def softmax_np(x):
    probs = np.exp(x - np.max(x))
    probs /= np.sum(probs)
    return probs


def get_equi_data(play_data):
    """train.py's augmentation by rotation and flipping (NumPy, as the original)."""
    extend_data = []
    for state, mcts_porb, winner in play_data:
        for i in [1, 2, 3, 4]:
            # rotate counterclockwise
            equi_state = np.array([np.rot90(s, i) for s in state])
            equi_mcts_prob = np.rot90(np.flipud(mcts_porb.reshape(Z_H, Z_W)), i)
            extend_data.append((equi_state, np.flipud(equi_mcts_prob).flatten(), winner))
            # flip horizontally
            equi_state = np.array([np.fliplr(s) for s in equi_state])
            equi_mcts_prob = np.fliplr(equi_mcts_prob)
            extend_data.append((equi_state, np.flipud(equi_mcts_prob).flatten(), winner))
    return extend_data


def train_alphazero(T, device, init, play_data, mini_batches, leaves, policy_loss="gomoku", temp=1.0,
                    learn_rate=2e-3, kl_targ=0.02, epochs=3, c_puct=5):
    F = T.nn.functional
    Variable = T.autograd.Variable
    device = device_of(T, device)
    policy_value_net = ported_model(T, alphazero_net, init, device)
    l2_const = 1e-4  # coef of l2 penalty
    optimizer = T.optim.Adam(policy_value_net.parameters(), weight_decay=l2_const)

    def set_learning_rate(optimizer, lr):
        """Sets the learning rate to the given value"""
        for param_group in optimizer.param_groups:
            param_group['lr'] = lr

    # torch.FloatTensor(...) in the original (typed constructors: README), and .data.numpy() (Tensor.data is
    # the raw array in raygrad: README) becomes .detach().cpu().numpy().
    def FloatTensor(x):
        return T.as_tensor(np.array(x), dtype=T.float32).to(device)

    def policy_value(state_batch):
        state_batch = Variable(FloatTensor(state_batch))
        log_act_probs, value = policy_value_net(state_batch)
        act_probs = np.exp(log_act_probs.detach().cpu().numpy())
        return act_probs, value.detach().cpu().numpy()

    def policy_value_fn(current_state, availables):
        legal_positions = availables
        current_state = np.ascontiguousarray(current_state.reshape(-1, 4, Z_W, Z_H))
        log_act_probs, value = policy_value_net(Variable(T.from_numpy(current_state).to(device)).float())
        act_probs = np.exp(log_act_probs.detach().cpu().numpy().flatten())
        act_probs = zip(legal_positions, act_probs[legal_positions])
        value = value.detach()[0][0].item()
        return act_probs, value

    def train_step(state_batch, mcts_probs, winner_batch, lr):
        state_batch = Variable(FloatTensor(state_batch))
        mcts_probs = Variable(FloatTensor(mcts_probs))
        winner_batch = Variable(FloatTensor(winner_batch))
        optimizer.zero_grad()
        set_learning_rate(optimizer, lr)
        log_act_probs, value = policy_value_net(state_batch)
        # define the loss = (z - v)^2 - pi^T * log(p) + c||theta||^2
        # Note: the L2 penalty is incorporated in optimizer
        value_loss = F.mse_loss(value.view(-1), winner_batch)
        if policy_loss == "gomoku":
            pi_loss = -T.mean(T.sum(mcts_probs * log_act_probs, 1))
        else:  # ports that hand the visit distribution to cross_entropy as soft (probability) targets
            pi_loss = F.cross_entropy(log_act_probs, mcts_probs)
        loss = value_loss + pi_loss
        loss.backward()
        optimizer.step()
        # calc policy entropy, for monitoring only
        entropy = -T.mean(T.sum(T.exp(log_act_probs) * log_act_probs, 1))
        return loss.item(), entropy.item()

    # MCTSPlayer.get_action: pi from the root's visit counts (given as data here), then augmentation
    data_buffer = []
    for state, acts, visits, winner in play_data:
        act_probs = softmax_np(1.0 / temp * np.log(np.array(visits) + 1e-10))
        move_probs = np.zeros(Z_W * Z_H)
        move_probs[list(acts)] = act_probs
        data_buffer.extend(get_equi_data([(state, move_probs, winner)]))

    losses, lr_multiplier = [], 1.0
    for batch_ids in mini_batches:  # policy_update(), random.sample(...) drawn outside
        mini_batch = [data_buffer[i] for i in batch_ids]
        state_batch = [data[0] for data in mini_batch]
        mcts_probs_batch = [data[1] for data in mini_batch]
        winner_batch = [data[2] for data in mini_batch]
        old_probs, old_v = policy_value(state_batch)
        for i in range(epochs):
            loss, entropy = train_step(state_batch, mcts_probs_batch, winner_batch, learn_rate * lr_multiplier)
            new_probs, new_v = policy_value(state_batch)
            kl = np.mean(np.sum(old_probs * (np.log(old_probs + 1e-10) - np.log(new_probs + 1e-10)), axis=1))
            losses += [loss, entropy, kl]
            if kl > kl_targ * 4:  # early stopping if D_KL diverges badly
                break
        # adaptively adjust the learning rate
        if kl > kl_targ * 2 and lr_multiplier > 0.1:
            lr_multiplier /= 1.5
        elif kl < kl_targ / 2 and lr_multiplier < 10:
            lr_multiplier *= 1.5
        explained_var_old = (1 - np.var(np.array(winner_batch) - old_v.flatten()) / np.var(np.array(winner_batch)))
        explained_var_new = (1 - np.var(np.array(winner_batch) - new_v.flatten()) / np.var(np.array(winner_batch)))
        losses += [lr_multiplier, explained_var_old, explained_var_new]

    # MCTS: expand a leaf with the network's priors, then TreeNode.select's argmax of Q + u
    for current_state, availables, Q, n_visits in leaves:
        with T.no_grad():
            act_probs, leaf_value = policy_value_fn(current_state, availables)
        priors = np.array([p for _, p in act_probs])
        u = c_puct * priors * np.sqrt(n_visits.sum()) / (1 + n_visits)
        losses += priors.tolist() + [leaf_value, int(availables[np.argmax(Q + u)])]
    return losses, numpy_state(policy_value_net)


@pytest.mark.filterwarnings("ignore:Implicit dimension choice", "ignore:log_softmax. implicit dim")
@pytest.mark.parametrize("policy_loss", ["gomoku", "soft_cross_entropy"])
def test_alphazero_policy_value(device, policy_loss):
    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    n = Z_W * Z_H
    play_data = []
    for _ in range(3):
        acts = np.sort(rng.choice(n, 10, replace=False))
        play_data.append(((rng.random((4, Z_H, Z_W)) < 0.3) * 1.0, acts, rng.integers(0, 30, 10),
                          float(rng.choice([-1.0, 1.0]))))
    mini_batches = [rng.choice(24, 8, replace=False) for _ in range(3)]
    leaves = []
    for _ in range(2):
        availables = np.sort(rng.choice(n, 12, replace=False))
        leaves.append(((rng.random((4, Z_H, Z_W)) < 0.3).astype(np.float32), availables,
                       rng.uniform(-1, 1, 12), rng.integers(0, 5, 12)))
    run_both(train_alphazero, device, numpy_state(alphazero_net(torch)), play_data, mini_batches, leaves,
             policy_loss=policy_loss)


# ---- 6. GAIL (ikostrikov/pytorch-a2c-ppo-acktr-gail a2c_ppo_acktr/algo/gail.py): discriminator with a
#         WGAN-GP-style gradient penalty (autograd.grad, create_graph=True), normalised learned rewards -----

G_OBS, G_ACT, G_HID, G_B = 4, 2, 16, 6


def gail_discriminator(T, device="cpu"):
    nn = T.nn
    autograd, F = T.autograd, T.nn.functional

    class Discriminator(nn.Module):
        def __init__(self, input_dim, hidden_dim, device):
            super(Discriminator, self).__init__()
            self.device = device
            self.trunk = nn.Sequential(
                nn.Linear(input_dim, hidden_dim), nn.Tanh(),
                nn.Linear(hidden_dim, hidden_dim), nn.Tanh(),
                nn.Linear(hidden_dim, 1)).to(device)
            self.trunk.train()
            self.optimizer = T.optim.Adam(self.trunk.parameters())
            self.returns = None
            self.ret_rms = RunningMeanStd(shape=())

        def compute_grad_pen(self, expert_state, expert_action, policy_state, policy_action, alpha, lambda_=10):
            # alpha = torch.rand(expert_state.size(0), 1) in the original: the draw comes in.
            expert_data = T.cat([expert_state, expert_action], dim=1)
            policy_data = T.cat([policy_state, policy_action], dim=1)
            alpha = alpha.expand_as(expert_data).to(expert_data.device)
            mixup_data = alpha * expert_data + (1 - alpha) * policy_data
            mixup_data.requires_grad = True
            disc = self.trunk(mixup_data)
            ones = T.ones(disc.size()).to(disc.device)
            grad = autograd.grad(
                outputs=disc,
                inputs=mixup_data,
                grad_outputs=ones,
                create_graph=True,
                retain_graph=True,
                only_inputs=True)[0]
            grad_pen = lambda_ * (grad.norm(2, dim=1) - 1).pow(2).mean()
            return grad_pen

        def update(self, expert_loader, policy_data_generator, alphas):
            self.train()
            loss = 0
            n = 0
            for expert_batch, policy_batch, alpha in zip(expert_loader, policy_data_generator, alphas):
                policy_state, policy_action = policy_batch[0], policy_batch[2]
                policy_d = self.trunk(T.cat([policy_state, policy_action], dim=1))
                expert_state, expert_action = expert_batch
                expert_state = T.as_tensor(expert_state.numpy(), dtype=T.float32).to(self.device)
                expert_action = expert_action.to(self.device)
                expert_d = self.trunk(T.cat([expert_state, expert_action], dim=1))
                expert_loss = F.binary_cross_entropy_with_logits(expert_d, T.ones(expert_d.size()).to(self.device))
                policy_loss = F.binary_cross_entropy_with_logits(policy_d, T.zeros(policy_d.size()).to(self.device))
                gail_loss = expert_loss + policy_loss
                grad_pen = self.compute_grad_pen(expert_state, expert_action, policy_state, policy_action, alpha)
                loss += (gail_loss + grad_pen).item()
                n += 1
                self.optimizer.zero_grad()
                (gail_loss + grad_pen).backward()
                self.optimizer.step()
            return loss / n

        def predict_reward(self, state, action, gamma, masks, update_rms=True):
            with T.no_grad():
                self.eval()
                d = self.trunk(T.cat([state, action], dim=1))
                s = T.sigmoid(d)
                reward = s.log() - (1 - s).log()
                if self.returns is None:
                    self.returns = reward.clone()
                if update_rms:
                    self.returns = self.returns * masks * gamma + reward
                    self.ret_rms.update(self.returns.cpu().numpy())
                return reward / np.sqrt(self.ret_rms.var[0] + 1e-8)

    return Discriminator(G_OBS + G_ACT, G_HID, device)


def train_gail(T, device, init, expert, policy_batches, alphas, rollout, gamma=0.99, gail_epoch=3):
    device = device_of(T, device)
    discr = gail_discriminator(T, device)
    discr.load_state_dict({k: T.tensor(v) for k, v in init.items()})
    expert_dataset = T.utils.data.TensorDataset(*(T.as_tensor(e, dtype=T.float32) for e in expert))
    gail_train_loader = T.utils.data.DataLoader(dataset=expert_dataset, batch_size=G_B, shuffle=False,
                                                drop_last=True)
    losses = []
    for epoch in range(gail_epoch):
        # rollouts.feed_forward_generator(None, mini_batch_size=...) yields (obs, recurrent, actions, ...)
        generator = ((T.as_tensor(s, dtype=T.float32).to(device), None, T.as_tensor(a, dtype=T.float32).to(device))
                     for s, a in policy_batches)
        losses.append(discr.update(gail_train_loader, generator, [T.as_tensor(a, dtype=T.float32).to(device)
                                                                  for a in alphas[epoch]]))
    obs, actions, masks = (T.as_tensor(r, dtype=T.float32).to(device) for r in rollout)
    rewards = T.zeros(obs.shape[0], obs.shape[1], 1, device=device)
    for step in range(obs.shape[0]):
        rewards[step] = discr.predict_reward(obs[step], actions[step], gamma, masks[step])
    assert rewards.dtype == T.float32 and not discr.training
    losses += rewards.flatten().tolist() + discr.ret_rms.mean.tolist() + discr.ret_rms.var.tolist()
    return losses, numpy_state(discr)


def test_gail_gradient_penalty(device):
    torch.manual_seed(6)
    rng = np.random.default_rng(6)
    n_batches = 3
    expert = (rng.standard_normal((n_batches * G_B + 2, G_OBS)) + 1.0,  # drop_last leaves 2 out
              rng.uniform(-1, 1, (n_batches * G_B + 2, G_ACT)))
    policy_batches = [(rng.standard_normal((G_B, G_OBS)), rng.uniform(-1, 1, (G_B, G_ACT))) for _ in range(n_batches)]
    alphas = [[rng.random((G_B, 1)) for _ in range(n_batches)] for _ in range(3)]
    rollout = (rng.standard_normal((4, 3, G_OBS)), rng.uniform(-1, 1, (4, 3, G_ACT)),
               (rng.random((4, 3, 1)) > 0.2) * 1.0)
    run_both(train_gail, device, numpy_state(gail_discriminator(torch)), expert, policy_batches, alphas, rollout)


# ---- 7. CQL (aviralkumar2907/CQL d4rl/rlkit/torch/sac/cql.py): TanhGaussian SAC plus the conservative
#         logsumexp over random / current / next policy actions (min_q_version 3), Lagrange alpha_prime -------

C_OBS, C_ACT, C_HID, C_B, C_RAND = 4, 2, 16, 5, 3
LOG_SIG_MAX, LOG_SIG_MIN = 2, -20


def cql_nets(T):
    nn, F = T.nn, T.nn.functional
    Normal = T.distributions.Normal

    class FlattenMlp(nn.Module):
        """rlkit Mlp + FlattenMlp: concatenate the inputs along dim 1."""

        def __init__(self, hidden_sizes, output_size, input_size, hidden_activation=F.relu):
            super().__init__()
            self.hidden_activation = hidden_activation
            self.fcs = nn.ModuleList()
            in_size = input_size
            for next_size in hidden_sizes:
                self.fcs.append(nn.Linear(in_size, next_size))
                in_size = next_size
            self.last_fc = nn.Linear(in_size, output_size)

        def forward(self, *inputs, **kwargs):
            h = T.cat(inputs, dim=1)
            for fc in self.fcs:
                h = self.hidden_activation(fc(h))
            return self.last_fc(h)

    class TanhNormal:
        """rlkit's TanhNormal: log_prob corrected by log(1 - tanh(x)^2 + epsilon)."""

        def __init__(self, normal_mean, normal_std, epsilon=1e-6):
            self.normal_mean = normal_mean
            self.normal_std = normal_std
            self.normal = Normal(normal_mean, normal_std)
            self.epsilon = epsilon

        def log_prob(self, value, pre_tanh_value=None):
            if pre_tanh_value is None:
                pre_tanh_value = T.log((1 + value) / (1 - value)) / 2
            return self.normal.log_prob(pre_tanh_value) - T.log(1 - value * value + self.epsilon)

        def rsample(self, eps, return_pretanh_value=False):
            # Normal(zeros, ones).sample() in the original: the standard normal draw eps comes in.
            z = self.normal_mean + self.normal_std * eps
            z.requires_grad_()
            if return_pretanh_value:
                return T.tanh(z), z
            return T.tanh(z)

    class TanhGaussianPolicy(FlattenMlp):
        def __init__(self, hidden_sizes, obs_dim, action_dim):
            super().__init__(hidden_sizes, action_dim, obs_dim)
            self.last_fc_log_std = nn.Linear(hidden_sizes[-1], action_dim)

        def forward(self, obs, eps, reparameterize=True, deterministic=False, return_log_prob=False):
            h = obs
            for i, fc in enumerate(self.fcs):
                h = self.hidden_activation(fc(h))
            mean = self.last_fc(h)
            log_std = self.last_fc_log_std(h)
            log_std = T.clamp(log_std, LOG_SIG_MIN, LOG_SIG_MAX)
            std = T.exp(log_std)
            log_prob = None
            pre_tanh_value = None
            if deterministic:
                action = T.tanh(mean)
            else:
                tanh_normal = TanhNormal(mean, std)
                if return_log_prob:
                    action, pre_tanh_value = tanh_normal.rsample(eps, return_pretanh_value=True)
                    log_prob = tanh_normal.log_prob(action, pre_tanh_value=pre_tanh_value)
                    log_prob = log_prob.sum(dim=1, keepdim=True)
                else:
                    action = tanh_normal.rsample(eps)
            return action, mean, log_std, log_prob, std, pre_tanh_value

    class Nets(nn.Module):
        def __init__(self):
            super().__init__()
            self.policy = TanhGaussianPolicy([C_HID, C_HID], C_OBS, C_ACT)
            self.qf1 = FlattenMlp([C_HID, C_HID], 1, C_OBS + C_ACT)
            self.qf2 = FlattenMlp([C_HID, C_HID], 1, C_OBS + C_ACT)

    return Nets()


def train_cql(T, device, init, batches, noises, random_actions, discount=0.99, soft_target_tau=5e-2, temp=1.0,
              min_q_weight=5.0, target_action_gap=1.0, with_lagrange=True, lr=3e-3):
    nn = T.nn
    device = device_of(T, device)
    nets = ported_model(T, cql_nets, init, device)
    policy, qf1, qf2 = nets.policy, nets.qf1, nets.qf2
    target_qf1, target_qf2 = copy.deepcopy(qf1), copy.deepcopy(qf2)
    target_entropy = -np.prod((C_ACT,)).item()  # heuristic value from Tuomas
    log_alpha = T.zeros(1, requires_grad=True, device=device)
    alpha_optimizer = T.optim.Adam([log_alpha], lr=lr)
    log_alpha_prime = T.zeros(1, requires_grad=True, device=device)
    alpha_prime_optimizer = T.optim.Adam([log_alpha_prime], lr=lr)
    qf_criterion = nn.MSELoss()
    policy_optimizer = T.optim.Adam(policy.parameters(), lr=lr)
    qf1_optimizer = T.optim.Adam(qf1.parameters(), lr=lr)
    qf2_optimizer = T.optim.Adam(qf2.parameters(), lr=lr)

    def soft_update_from_to(source, target, tau):
        # rlkit's ptu.soft_update_from_to writes target_param.data.copy_(...): Tensor.data is the raw array in
        # raygrad (README), so the same update runs under no_grad.
        with T.no_grad():
            for target_param, param in zip(target.parameters(), source.parameters()):
                target_param.copy_(target_param * (1.0 - tau) + param * tau)

    def _get_tensor_values(obs, actions, network=None):
        action_shape = actions.shape[0]
        obs_shape = obs.shape[0]
        num_repeat = int(action_shape / obs_shape)
        obs_temp = obs.unsqueeze(1).repeat(1, num_repeat, 1).view(obs.shape[0] * num_repeat, obs.shape[1])
        preds = network(obs_temp, actions)
        preds = preds.view(obs.shape[0], num_repeat, 1)
        return preds

    def _get_policy_actions(obs, num_actions, eps, network=None):
        obs_temp = obs.unsqueeze(1).repeat(1, num_actions, 1).view(obs.shape[0] * num_actions, obs.shape[1])
        new_obs_actions, _, _, new_obs_log_pi, *_ = network(obs_temp, eps, reparameterize=True, return_log_prob=True)
        return new_obs_actions, new_obs_log_pi.view(obs.shape[0], num_actions, 1)

    losses = []
    for batch, noise, random_actions_np in zip(batches, noises, random_actions):
        obs, actions, next_obs, rewards, terminals = (T.as_tensor(b, dtype=T.float32).to(device) for b in batch)
        eps_obs, eps_next, eps_curr_rep, eps_next_rep = (T.as_tensor(n, dtype=T.float32).to(device) for n in noise)
        # Policy and Alpha Loss
        new_obs_actions, policy_mean, policy_log_std, log_pi, *_ = policy(obs, eps_obs, reparameterize=True,
                                                                          return_log_prob=True)
        alpha_loss = -(log_alpha * (log_pi + target_entropy).detach()).mean()
        alpha_optimizer.zero_grad()
        alpha_loss.backward()
        alpha_optimizer.step()
        alpha = log_alpha.exp()
        q_new_actions = T.min(qf1(obs, new_obs_actions), qf2(obs, new_obs_actions))
        policy_loss = (alpha * log_pi - q_new_actions).mean()
        # rlkit steps the critics first and then backpropagates this loss through the critics it just
        # changed in place, which PyTorch >= 1.5 refuses; the actor goes first, as in CORL's cql.py.
        policy_optimizer.zero_grad()
        policy_loss.backward()
        policy_optimizer.step()

        # QF Loss
        q1_pred = qf1(obs, actions)
        q2_pred = qf2(obs, actions)
        with T.no_grad():
            new_next_actions, _, _, new_log_pi, *_ = policy(next_obs, eps_next, reparameterize=True,
                                                            return_log_prob=True)
            target_q_values = T.min(target_qf1(next_obs, new_next_actions), target_qf2(next_obs, new_next_actions))
            target_q_values = target_q_values - alpha * new_log_pi
        q_target = rewards + (1. - terminals) * discount * target_q_values
        q_target = q_target.detach()
        qf1_loss = qf_criterion(q1_pred, q_target)
        qf2_loss = qf_criterion(q2_pred, q_target)

        # add CQL
        # torch.FloatTensor(q2_pred.shape[0] * num_random, actions.shape[-1]).uniform_(-1, 1): drawn outside
        random_actions_tensor = T.as_tensor(random_actions_np, dtype=T.float32).to(device)
        with T.no_grad():  # the sampled actions enter only through the critics here
            curr_actions_tensor, curr_log_pis = _get_policy_actions(obs, C_RAND, eps_curr_rep, network=policy)
            new_curr_actions_tensor, new_log_pis = _get_policy_actions(next_obs, C_RAND, eps_next_rep, network=policy)
        q1_rand = _get_tensor_values(obs, random_actions_tensor, network=qf1)
        q2_rand = _get_tensor_values(obs, random_actions_tensor, network=qf2)
        q1_curr_actions = _get_tensor_values(obs, curr_actions_tensor, network=qf1)
        q2_curr_actions = _get_tensor_values(obs, curr_actions_tensor, network=qf2)
        q1_next_actions = _get_tensor_values(obs, new_curr_actions_tensor, network=qf1)
        q2_next_actions = _get_tensor_values(obs, new_curr_actions_tensor, network=qf2)
        cat_q1 = T.cat([q1_rand, q1_pred.unsqueeze(1), q1_next_actions, q1_curr_actions], 1)
        cat_q2 = T.cat([q2_rand, q2_pred.unsqueeze(1), q2_next_actions, q2_curr_actions], 1)
        std_q1 = T.std(cat_q1, dim=1)
        std_q2 = T.std(cat_q2, dim=1)
        # importance sampled version (min_q_version == 3)
        random_density = np.log(0.5 ** curr_actions_tensor.shape[-1])
        cat_q1 = T.cat([q1_rand - random_density, q1_next_actions - new_log_pis.detach(),
                        q1_curr_actions - curr_log_pis.detach()], 1)
        cat_q2 = T.cat([q2_rand - random_density, q2_next_actions - new_log_pis.detach(),
                        q2_curr_actions - curr_log_pis.detach()], 1)
        min_qf1_loss = T.logsumexp(cat_q1 / temp, dim=1,).mean() * min_q_weight * temp
        min_qf2_loss = T.logsumexp(cat_q2 / temp, dim=1,).mean() * min_q_weight * temp
        """Subtract the log likelihood of data"""
        min_qf1_loss = min_qf1_loss - q1_pred.mean() * min_q_weight
        min_qf2_loss = min_qf2_loss - q2_pred.mean() * min_q_weight
        if with_lagrange:
            alpha_prime = T.clamp(log_alpha_prime.exp(), min=0.0, max=1000000.0)
            min_qf1_loss = alpha_prime * (min_qf1_loss - target_action_gap)
            min_qf2_loss = alpha_prime * (min_qf2_loss - target_action_gap)
            alpha_prime_optimizer.zero_grad()
            alpha_prime_loss = (-min_qf1_loss - min_qf2_loss) * 0.5
            alpha_prime_loss.backward(retain_graph=True)
            alpha_prime_optimizer.step()
        qf1_loss = qf1_loss + min_qf1_loss
        qf2_loss = qf2_loss + min_qf2_loss
        # Update networks
        qf1_optimizer.zero_grad()
        qf1_loss.backward(retain_graph=True)
        qf1_optimizer.step()
        qf2_optimizer.zero_grad()
        qf2_loss.backward(retain_graph=True)
        qf2_optimizer.step()
        # Soft updates
        soft_update_from_to(qf1, target_qf1, soft_target_tau)
        soft_update_from_to(qf2, target_qf2, soft_target_tau)
        losses += [alpha_loss.item(), policy_loss.item(), qf1_loss.item(), qf2_loss.item(), min_qf1_loss.item(),
                   min_qf2_loss.item(), std_q1.mean().item(), std_q2.mean().item(), alpha.item(),
                   alpha_prime.item(), alpha_prime_loss.item(), policy_log_std.mean().item()]
        assert q1_rand.shape == (C_B, C_RAND, 1) and cat_q1.shape == (C_B, 3 * C_RAND, 1)
        assert (q1_rand - random_density).dtype == T.float32
    return losses, prefixed(nets=nets, target_qf1=target_qf1, target_qf2=target_qf2)


def test_cql(device):
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    steps = 3
    batches = [(rng.standard_normal((C_B, C_OBS)), rng.uniform(-0.99, 0.99, (C_B, C_ACT)),
                rng.standard_normal((C_B, C_OBS)), rng.standard_normal((C_B, 1)),
                (rng.random((C_B, 1)) < 0.2) * 1.0) for _ in range(steps)]
    noises = [(rng.standard_normal((C_B, C_ACT)), rng.standard_normal((C_B, C_ACT)),
               rng.standard_normal((C_B * C_RAND, C_ACT)), rng.standard_normal((C_B * C_RAND, C_ACT)))
              for _ in range(steps)]
    random_actions = [rng.uniform(-1, 1, (C_B * C_RAND, C_ACT)) for _ in range(steps)]
    run_both(train_cql, device, numpy_state(cql_nets(torch)), batches, noises, random_actions)


# ---- 8. IQL (gwthomas/IQL-PyTorch src/iql.py, policy.py, value_functions.py): expectile regression,
#         twin Q, advantage-weighted regression with clipped exp weights, MultivariateNormal policy ----------

Q_OBS, Q_ACT, Q_HID, Q_B = 4, 2, 16, 6
EXP_ADV_MAX = 100.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def iql_nets(T):
    nn = T.nn
    MultivariateNormal = T.distributions.MultivariateNormal

    class Squeeze(nn.Module):
        def __init__(self, dim=-1):
            super().__init__()
            self.dim = dim

        def forward(self, x):
            return x.squeeze(dim=self.dim)

    def mlp(dims, activation=nn.ReLU, output_activation=None, squeeze_output=False):
        n_dims = len(dims)
        assert n_dims >= 2, 'MLP requires at least two dims (input and output)'
        layers = []
        for i in range(n_dims - 2):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            layers.append(activation())
        layers.append(nn.Linear(dims[-2], dims[-1]))
        if output_activation is not None:
            layers.append(output_activation())
        if squeeze_output:
            assert dims[-1] == 1
            layers.append(Squeeze(-1))
        net = nn.Sequential(*layers)
        net.to(dtype=T.float32)
        return net

    class TwinQ(nn.Module):
        def __init__(self, state_dim, action_dim, hidden_dim=256, n_hidden=2):
            super().__init__()
            dims = [state_dim + action_dim, *([hidden_dim] * n_hidden), 1]
            self.q1 = mlp(dims, squeeze_output=True)
            self.q2 = mlp(dims, squeeze_output=True)

        def both(self, state, action):
            sa = T.cat([state, action], 1)
            return self.q1(sa), self.q2(sa)

        def forward(self, state, action):
            return T.min(*self.both(state, action))

    class ValueFunction(nn.Module):
        def __init__(self, state_dim, hidden_dim=256, n_hidden=2):
            super().__init__()
            dims = [state_dim, *([hidden_dim] * n_hidden), 1]
            self.v = mlp(dims, squeeze_output=True)

        def forward(self, state):
            return self.v(state)

    class GaussianPolicy(nn.Module):
        def __init__(self, obs_dim, act_dim, hidden_dim=256, n_hidden=2):
            super().__init__()
            self.net = mlp([obs_dim, *([hidden_dim] * n_hidden), act_dim])
            self.log_std = nn.Parameter(T.zeros(act_dim, dtype=T.float32))

        def forward(self, obs):
            mean = self.net(obs)
            std = T.exp(self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))
            scale_tril = T.diag(std)
            return MultivariateNormal(mean, scale_tril=scale_tril)

        def act(self, obs, deterministic=False, enable_grad=False):
            with T.set_grad_enabled(enable_grad):
                dist = self(obs)
                return dist.mean if deterministic else dist.sample()

    class Nets(nn.Module):
        def __init__(self):
            super().__init__()
            self.qf = TwinQ(Q_OBS, Q_ACT, hidden_dim=Q_HID)
            self.vf = ValueFunction(Q_OBS, hidden_dim=Q_HID)
            self.policy = GaussianPolicy(Q_OBS, Q_ACT, hidden_dim=Q_HID)

    return Nets()


def train_iql(T, device, init, batches, eval_obs, tau=0.7, beta=10.0, discount=0.99, alpha=0.05, max_steps=4):
    F = T.nn.functional
    device = device_of(T, device)
    nets = ported_model(T, iql_nets, init, device)
    qf, vf, policy = nets.qf, nets.vf, nets.policy
    q_target = copy.deepcopy(qf).requires_grad_(False).to(device)
    v_optimizer = T.optim.Adam(vf.parameters(), lr=3e-3)
    q_optimizer = T.optim.Adam(qf.parameters(), lr=3e-3)
    policy_optimizer = T.optim.Adam(policy.parameters(), lr=3e-3)
    policy_lr_schedule = T.optim.lr_scheduler.CosineAnnealingLR(policy_optimizer, max_steps)

    def asymmetric_l2_loss(u, tau):
        return T.mean(T.abs(tau - (u < 0).float()) * u ** 2)

    def update_exponential_moving_average(target, source, alpha):
        # target_param.data.mul_(1. - alpha).add_(source_param.data, alpha=alpha) in the original: Tensor.data is
        # the raw array in raygrad (README), so the same in-place update runs under no_grad.
        with T.no_grad():
            for target_param, source_param in zip(target.parameters(), source.parameters()):
                target_param.mul_(1. - alpha).add_(source_param, alpha=alpha)

    losses = []
    for batch in batches:
        observations, actions, next_observations, rewards = (T.as_tensor(b, dtype=T.float32, device=device)
                                                             for b in batch[:4])
        terminals = T.as_tensor(batch[4], device=device)  # bool
        with T.no_grad():
            target_q = q_target(observations, actions)
            next_v = vf(next_observations)
        # Update value function
        v = vf(observations)
        adv = target_q - v
        v_loss = asymmetric_l2_loss(adv, tau)
        v_optimizer.zero_grad(set_to_none=True)
        v_loss.backward()
        v_optimizer.step()
        # Update Q function
        targets = rewards + (1. - terminals.float()) * discount * next_v.detach()
        qs = qf.both(observations, actions)
        q_loss = sum(F.mse_loss(q, targets) for q in qs) / len(qs)
        q_optimizer.zero_grad(set_to_none=True)
        q_loss.backward()
        q_optimizer.step()
        # Update target Q network
        update_exponential_moving_average(q_target, qf, alpha)
        # Update policy
        exp_adv = T.exp(beta * adv.detach()).clamp(max=EXP_ADV_MAX)
        policy_out = policy(observations)
        if isinstance(policy_out, T.distributions.Distribution):
            bc_losses = -policy_out.log_prob(actions)
        elif T.is_tensor(policy_out):
            assert policy_out.shape == actions.shape
            bc_losses = T.sum((policy_out - actions) ** 2, dim=1)
        else:
            raise NotImplementedError
        policy_loss = T.mean(exp_adv * bc_losses)
        policy_optimizer.zero_grad(set_to_none=True)
        policy_loss.backward()
        policy_optimizer.step()
        policy_lr_schedule.step()
        losses += [v_loss.item(), q_loss.item(), policy_loss.item(), exp_adv.max().item(),
                   policy_lr_schedule.get_last_lr()[0], policy_out.entropy().mean().item()]
    with T.no_grad():
        eval_obs = T.as_tensor(eval_obs, dtype=T.float32, device=device)
        losses += policy.act(eval_obs, deterministic=True).flatten().tolist()
    assert all(not p.requires_grad for p in q_target.parameters())
    return losses, prefixed(nets=nets, q_target=q_target)


def test_iql(device):
    torch.manual_seed(8)
    rng = np.random.default_rng(8)
    # observations spread enough that beta * adv passes log(EXP_ADV_MAX) for some samples: the clip bites
    batches = [(rng.standard_normal((Q_B, Q_OBS)) * 3, rng.uniform(-1, 1, (Q_B, Q_ACT)),
                rng.standard_normal((Q_B, Q_OBS)) * 3, rng.standard_normal(Q_B) * 3, rng.random(Q_B) < 0.2)
               for _ in range(4)]
    run_both(train_iql, device, numpy_state(iql_nets(torch)), batches, rng.standard_normal((3, Q_OBS)))


# ---- 9. Discrete SAC (CleanRL sac_atari.py): soft-Q targets as expectations under the policy, learned
#         temperature log_alpha with target entropy -0.89 * log(1/|A|), uint8 frames, inference_mode ----------

S_FRAMES, S_SIZE, S_ACT, S_B = 2, 8, 4, 5


def discrete_sac_nets(T):
    nn, F = T.nn, T.nn.functional

    def layer_init(layer, bias_const=0.0):
        nn.init.kaiming_normal_(layer.weight)
        nn.init.constant_(layer.bias, bias_const)
        return layer

    obs_shape = (S_FRAMES, S_SIZE, S_SIZE)

    class SoftQNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(
                layer_init(nn.Conv2d(obs_shape[0], 4, kernel_size=4, stride=2)),
                nn.ReLU(),
                layer_init(nn.Conv2d(4, 6, kernel_size=3, stride=1)),
                nn.Flatten(),
            )
            with T.inference_mode():
                output_dim = self.conv(T.zeros(1, *obs_shape)).shape[1]
            self.fc1 = layer_init(nn.Linear(output_dim, 16))
            self.fc_q = layer_init(nn.Linear(16, S_ACT))

        def forward(self, x):
            x = F.relu(self.conv(x / 255.0))
            x = F.relu(self.fc1(x))
            q_vals = self.fc_q(x)
            return q_vals

    class Actor(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(
                layer_init(nn.Conv2d(obs_shape[0], 4, kernel_size=4, stride=2)),
                nn.ReLU(),
                layer_init(nn.Conv2d(4, 6, kernel_size=3, stride=1)),
                nn.Flatten(),
            )
            with T.inference_mode():
                output_dim = self.conv(T.zeros(1, *obs_shape)).shape[1]
            self.fc1 = layer_init(nn.Linear(output_dim, 16))
            self.fc_logits = layer_init(nn.Linear(16, S_ACT))

        def forward(self, x):
            x = F.relu(self.conv(x))
            x = F.relu(self.fc1(x))
            logits = self.fc_logits(x)
            return logits

        def get_action(self, x):
            logits = self(x / 255.0)
            policy_dist = T.distributions.Categorical(logits=logits)
            action = policy_dist.sample()  # used only to act in the environment, not by the losses
            # Action probabilities for calculating the adapted soft-Q loss
            action_probs = policy_dist.probs
            log_prob = F.log_softmax(logits, dim=1)
            return action, log_prob, action_probs

    class Nets(nn.Module):
        def __init__(self):
            super().__init__()
            self.actor, self.qf1, self.qf2 = Actor(), SoftQNetwork(), SoftQNetwork()

    return Nets()


def train_discrete_sac(T, device, init, batches, gamma=0.99, tau=0.5, target_network_frequency=2,
                       target_entropy_scale=0.89, q_lr=3e-3, policy_lr=3e-3):
    F = T.nn.functional
    device = device_of(T, device)
    nets = ported_model(T, discrete_sac_nets, init, device)
    actor, qf1, qf2 = nets.actor, nets.qf1, nets.qf2
    qf1_target = discrete_sac_nets(T).qf1.to(device)
    qf2_target = discrete_sac_nets(T).qf2.to(device)
    qf1_target.load_state_dict(qf1.state_dict())
    qf2_target.load_state_dict(qf2.state_dict())
    # TRY NOT TO MODIFY: eps=1e-4 increases numerical stability
    q_optimizer = T.optim.Adam(list(qf1.parameters()) + list(qf2.parameters()), lr=q_lr, eps=1e-4)
    actor_optimizer = T.optim.Adam(list(actor.parameters()), lr=policy_lr, eps=1e-4)
    # Automatic entropy tuning
    target_entropy = -target_entropy_scale * T.log(1 / T.tensor(S_ACT))
    log_alpha = T.zeros(1, requires_grad=True, device=device)
    alpha = log_alpha.exp().item()
    a_optimizer = T.optim.Adam([log_alpha], lr=q_lr, eps=1e-4)
    losses = []
    for global_step, batch in enumerate(batches, start=1):
        observations, actions, next_observations, rewards, dones = (T.tensor(b).to(device) for b in batch)
        # CRITIC training
        with T.no_grad():
            _, next_state_log_pi, next_state_action_probs = actor.get_action(next_observations)
            qf1_next_target = qf1_target(next_observations)
            qf2_next_target = qf2_target(next_observations)
            # we can use the action probabilities instead of MC sampling to estimate the expectation
            min_qf_next_target = next_state_action_probs * (
                T.min(qf1_next_target, qf2_next_target) - alpha * next_state_log_pi)
            # adapt Q-target for discrete Q-function
            min_qf_next_target = min_qf_next_target.sum(dim=1)
            next_q_value = rewards.flatten() + (1 - dones.flatten()) * gamma * (min_qf_next_target)
        # use Q-values only for the taken actions
        qf1_values = qf1(observations)
        qf2_values = qf2(observations)
        qf1_a_values = qf1_values.gather(1, actions.long()).view(-1)
        qf2_a_values = qf2_values.gather(1, actions.long()).view(-1)
        qf1_loss = F.mse_loss(qf1_a_values, next_q_value)
        qf2_loss = F.mse_loss(qf2_a_values, next_q_value)
        qf_loss = qf1_loss + qf2_loss
        q_optimizer.zero_grad()
        qf_loss.backward()
        q_optimizer.step()
        # ACTOR training
        _, log_pi, action_probs = actor.get_action(observations)
        with T.no_grad():
            qf1_values = qf1(observations)
            qf2_values = qf2(observations)
            min_qf_values = T.min(qf1_values, qf2_values)
        # no need for reparameterization, the expectation can be calculated for discrete actions
        actor_loss = (action_probs * ((alpha * log_pi) - min_qf_values)).mean()
        actor_optimizer.zero_grad()
        actor_loss.backward()
        actor_optimizer.step()
        # re-use action probabilities for temperature loss
        alpha_loss = (action_probs.detach() * (-log_alpha.exp() * (log_pi + target_entropy).detach())).mean()
        a_optimizer.zero_grad()
        alpha_loss.backward()
        a_optimizer.step()
        alpha = log_alpha.exp().item()
        # update the target networks (target_param.data.copy_ in the original: README, Tensor.data)
        if global_step % target_network_frequency == 0:
            with T.no_grad():
                for param, target_param in zip(qf1.parameters(), qf1_target.parameters()):
                    target_param.copy_(tau * param + (1 - tau) * target_param)
                for param, target_param in zip(qf2.parameters(), qf2_target.parameters()):
                    target_param.copy_(tau * param + (1 - tau) * target_param)
        losses += [qf1_loss.item(), qf2_loss.item(), qf_loss.item() / 2.0, actor_loss.item(), alpha_loss.item(),
                   alpha, qf1_a_values.mean().item(), target_entropy.item()]
    return losses, prefixed(nets=nets, qf1_target=qf1_target, qf2_target=qf2_target)


def test_discrete_sac(device):
    torch.manual_seed(9)
    rng = np.random.default_rng(9)
    frames = lambda: rng.integers(0, 256, (S_B, S_FRAMES, S_SIZE, S_SIZE), dtype=np.uint8)  # noqa: E731
    batches = [(frames(), rng.integers(0, S_ACT, (S_B, 1)), frames(), rng.standard_normal((S_B, 1)).astype(np.float32),
                (rng.random((S_B, 1)) < 0.2).astype(np.float32)) for _ in range(4)]
    run_both(train_discrete_sac, device, numpy_state(discrete_sac_nets(torch)), batches)


# ---- 10. Soft Q-learning (Div99/IQ-Learn agent/softq.py): V = alpha * logsumexp(Q / alpha), Boltzmann policy,
#          log_alpha held as a float64 0-d tensor -----------------------------------------------------------

SQ_OBS, SQ_ACT, SQ_B = 4, 3, 6


def soft_q_net(T):
    nn, F = T.nn, T.nn.functional

    class SimpleQNetwork(nn.Module):
        def __init__(self, obs_dim, action_dim):
            super(SimpleQNetwork, self).__init__()
            self.fc1 = nn.Linear(obs_dim, 16)
            self.fc2 = nn.Linear(16, 16)
            self.fc3 = nn.Linear(16, action_dim)

        def forward(self, x, both=False):
            x = F.elu(self.fc1(x))
            x = F.elu(self.fc2(x))
            return self.fc3(x)

    return SimpleQNetwork(SQ_OBS, SQ_ACT)


def train_soft_q(T, device, init, batches, acting_obs, init_temp=0.3, gamma=0.99, critic_tau=0.1,
                 critic_target_update_frequency=1):
    F = T.nn.functional
    Categorical = T.distributions.Categorical
    device = device_of(T, device)

    class SoftQ(object):
        def __init__(self):
            self.gamma = gamma
            self.device = T.device(device)
            self.critic_tau = critic_tau
            self.critic_target_update_frequency = critic_target_update_frequency
            self.log_alpha = T.tensor(np.log(init_temp)).to(self.device)
            self.q_net = ported_model(T, soft_q_net, init, device)
            self.target_net = ported_model(T, soft_q_net, init, device)
            self.target_net.load_state_dict(self.q_net.state_dict())
            self.critic_optimizer = T.optim.Adam(self.q_net.parameters(), lr=3e-3, betas=[0.9, 0.999])
            self.train()
            self.target_net.train()

        def train(self, training=True):
            self.training = training
            self.q_net.train(training)

        @property
        def alpha(self):
            return self.log_alpha.exp()

        @property
        def critic_net(self):
            return self.q_net

        @property
        def critic_target_net(self):
            return self.target_net

        def choose_action(self, state, sample=False):
            # torch.FloatTensor(state) in the original: typed constructors are a README difference
            state = T.as_tensor(state, dtype=T.float32).to(self.device).unsqueeze(0)
            with T.no_grad():
                q = self.q_net(state)
                dist = F.softmax(q / self.alpha, dim=1)
                # if sample:
                dist = Categorical(dist)
                action = dist.sample()  # if sample else dist.mean
                # else:
                #     action = torch.argmax(dist, dim=1)
            return action.detach().cpu().numpy()[0], dist.probs.cpu().numpy()[0]

        def getV(self, obs):
            q = self.q_net(obs)
            v = self.alpha * T.logsumexp(q / self.alpha, dim=1, keepdim=True)
            return v

        def critic(self, obs, action, both=False):
            q = self.q_net(obs, both)
            return q.gather(1, action.long())

        def get_targetV(self, obs):
            q = self.target_net(obs)
            target_v = self.alpha * T.logsumexp(q / self.alpha, dim=1, keepdim=True)
            return target_v

        def update(self, replay_buffer, step):
            obs, next_obs, action, reward, done = replay_buffer
            losses = self.update_critic(obs, action, reward, next_obs, done, step)
            if step % self.critic_target_update_frequency == 0:
                # soft_update(self.critic_net, self.critic_target_net, self.critic_tau) with .data.copy_:
                # Tensor.data is the raw array in raygrad (README)
                with T.no_grad():
                    for param, target_param in zip(self.critic_net.parameters(), self.critic_target_net.parameters()):
                        target_param.copy_(self.critic_tau * param + (1 - self.critic_tau) * target_param)
            return losses

        def update_critic(self, obs, action, reward, next_obs, done, step):
            with T.no_grad():
                next_v = self.get_targetV(next_obs)
                y = reward + (1 - done) * self.gamma * next_v
            critic_loss = F.mse_loss(self.critic(obs, action), y)
            self.critic_optimizer.zero_grad()
            critic_loss.backward()
            self.critic_optimizer.step()
            return [critic_loss.item(), next_v.mean().item(), self.getV(obs).mean().item()]

    agent = SoftQ()
    losses = []
    for step, batch in enumerate(batches):
        obs, next_obs, action, reward, done = (T.as_tensor(b).to(device) for b in batch)
        losses += agent.update((obs.float(), next_obs.float(), action, reward.float(), done.float()), step)
        assert agent.getV(obs.float()).dtype == T.float32
    for state in acting_obs:
        _, probs = agent.choose_action(state)
        losses += probs.tolist()
    return losses, prefixed(q_net=agent.q_net, target_net=agent.target_net)


def test_soft_q_learning(device):
    torch.manual_seed(10)
    rng = np.random.default_rng(10)
    batches = [(rng.standard_normal((SQ_B, SQ_OBS)), rng.standard_normal((SQ_B, SQ_OBS)),
                rng.integers(0, SQ_ACT, (SQ_B, 1)), rng.standard_normal((SQ_B, 1)),
                (rng.random((SQ_B, 1)) < 0.2) * 1.0) for _ in range(4)]
    run_both(train_soft_q, device, numpy_state(soft_q_net(torch)), batches, rng.standard_normal((3, SQ_OBS)))


# ---- 11. RND (jcwon0/RND-pytorch model.py / agents.py / train.py): frozen random target, predictor
#          distillation on a random subset, observation normalisation by rl_games' RunningMeanStd module
#          (float64 buffers), intrinsic rewards scaled by the running std of their discounted sum ----------

N_FRAME, N_FEAT, N_STEPS_RND, N_ENVS_RND = 8, 16, 4, 3


def rnd_agent(T):
    nn = T.nn
    init = nn.init

    class Flatten(nn.Module):
        def forward(self, input):
            return input.view(input.size(0), -1)

    class RNDModel(nn.Module):
        def __init__(self, input_size, output_size):
            super(RNDModel, self).__init__()
            self.input_size = input_size
            self.output_size = output_size
            feature_output = 4 * 1 * 1
            self.predictor = nn.Sequential(
                nn.Conv2d(in_channels=1, out_channels=4, kernel_size=3, stride=2), nn.LeakyReLU(),
                nn.Conv2d(in_channels=4, out_channels=4, kernel_size=3, stride=1), nn.LeakyReLU(),
                Flatten(),
                nn.Linear(feature_output, N_FEAT), nn.ReLU(),
                nn.Linear(N_FEAT, N_FEAT), nn.ReLU(),
                nn.Linear(N_FEAT, N_FEAT))
            self.target = nn.Sequential(
                nn.Conv2d(in_channels=1, out_channels=4, kernel_size=3, stride=2), nn.LeakyReLU(),
                nn.Conv2d(in_channels=4, out_channels=4, kernel_size=3, stride=1), nn.LeakyReLU(),
                Flatten(),
                nn.Linear(feature_output, N_FEAT))
            for p in self.modules():
                # p.bias.data.zero_() in the original: Tensor.data is the raw array in raygrad (README)
                if isinstance(p, nn.Conv2d):
                    init.orthogonal_(p.weight, np.sqrt(2))
                    init.zeros_(p.bias)
                if isinstance(p, nn.Linear):
                    init.orthogonal_(p.weight, np.sqrt(2))
                    init.zeros_(p.bias)
            for param in self.target.parameters():
                param.requires_grad = False

        def forward(self, next_obs):
            target_feature = self.target(next_obs)
            predict_feature = self.predictor(next_obs)
            return predict_feature, target_feature

    class RunningMeanStd(nn.Module):
        """rl_games/algos_torch/running_mean_std.py"""

        def __init__(self, insize, epsilon=1e-05, per_channel=False, norm_only=False):
            super(RunningMeanStd, self).__init__()
            self.insize = insize
            self.epsilon = epsilon
            self.norm_only = norm_only
            self.per_channel = per_channel
            if per_channel:
                if len(self.insize) == 3:
                    self.axis = [0, 2, 3]
                if len(self.insize) == 2:
                    self.axis = [0, 2]
                if len(self.insize) == 1:
                    self.axis = [0]
                in_size = self.insize[0]
            else:
                self.axis = [0]
                in_size = insize
            self.register_buffer("running_mean", T.zeros(in_size, dtype=T.float64))
            self.register_buffer("running_var", T.ones(in_size, dtype=T.float64))
            self.register_buffer("count", T.ones((), dtype=T.float64))

        def _update_mean_var_count_from_moments(self, mean, var, count, batch_mean, batch_var, batch_count):
            delta = batch_mean - mean
            tot_count = count + batch_count
            new_mean = mean + delta * batch_count / tot_count
            m_a = var * count
            m_b = batch_var * batch_count
            M2 = m_a + m_b + delta ** 2 * count * batch_count / tot_count
            new_var = M2 / tot_count
            new_count = tot_count
            return new_mean, new_var, new_count

        def forward(self, input, denorm=False, mask=None):
            if self.training:
                mean = input.mean(self.axis)  # along channel axis
                var = input.var(self.axis)
                self.running_mean, self.running_var, self.count = self._update_mean_var_count_from_moments(
                    self.running_mean, self.running_var, self.count, mean, var, input.size()[0])
            # change shape
            if self.per_channel:
                if len(self.insize) == 3:
                    current_mean = self.running_mean.view([1, self.insize[0], 1, 1]).expand_as(input)
                    current_var = self.running_var.view([1, self.insize[0], 1, 1]).expand_as(input)
                if len(self.insize) == 2:
                    current_mean = self.running_mean.view([1, self.insize[0], 1]).expand_as(input)
                    current_var = self.running_var.view([1, self.insize[0], 1]).expand_as(input)
                if len(self.insize) == 1:
                    current_mean = self.running_mean.view([1, self.insize[0]]).expand_as(input)
                    current_var = self.running_var.view([1, self.insize[0]]).expand_as(input)
            else:
                current_mean = self.running_mean
                current_var = self.running_var
            # get output
            if denorm:
                y = T.clamp(input, min=-5.0, max=5.0)
                y = T.sqrt(current_var.float() + self.epsilon) * y + current_mean.float()
            else:
                if self.norm_only:
                    y = input / T.sqrt(current_var.float() + self.epsilon)
                else:
                    y = (input - current_mean.float()) / T.sqrt(current_var.float() + self.epsilon)
                    y = T.clamp(y, min=-5.0, max=5.0)
            return y

    class Agent(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnd = RNDModel((1, N_FRAME, N_FRAME), N_FEAT)
            self.obs_rms = RunningMeanStd((1, N_FRAME, N_FRAME))
            self.int_rms = RunningMeanStd((1,), per_channel=True, norm_only=True)

    return Agent()


class RewardForwardFilter(object):
    def __init__(self, gamma):
        self.rewems = None
        self.gamma = gamma

    def update(self, rews):
        if self.rewems is None:
            self.rewems = rews
        else:
            self.rewems = self.rewems * self.gamma + rews
        return self.rewems


def train_rnd(T, device, init, warmup_obs, rollouts, sample_ranges, mask_draws, int_gamma=0.99, epoch=2,
              batch_size=4, update_proportion=0.5):
    nn = T.nn
    device = device_of(T, device)
    agent = ported_model(T, rnd_agent, init, device)
    rnd, obs_rms = agent.rnd, agent.obs_rms
    optimizer = T.optim.Adam(list(rnd.predictor.parameters()), lr=1e-2)
    reward_rms = RunningMeanStd()
    discounted_reward = RewardForwardFilter(int_gamma)
    mask_draws, sample_ranges = iter(mask_draws), iter(sample_ranges)

    def compute_intrinsic_reward(next_obs):
        next_obs = T.as_tensor(next_obs, dtype=T.float32).to(device)  # torch.FloatTensor(next_obs)
        target_next_feature = rnd.target(next_obs)
        predict_next_feature = rnd.predictor(next_obs)
        intrinsic_reward = (target_next_feature - predict_next_feature).pow(2).sum(1) / 2
        return intrinsic_reward.detach().cpu().numpy()  # .data.cpu().numpy(): README, Tensor.data

    losses = []
    # normalize obs: the random agent's observations set the initial statistics
    obs_rms.train()
    obs_rms(T.as_tensor(warmup_obs, dtype=T.float32).to(device))
    for next_obs_np in rollouts:  # [num_step, num_env, 1, 8, 8]
        next_obs = T.as_tensor(next_obs_np, dtype=T.float32).to(device).view(-1, 1, N_FRAME, N_FRAME)
        obs_rms.eval()
        with T.no_grad():
            norm_next_obs = obs_rms(next_obs)  # normalised with the statistics before this rollout
        total_int_reward = compute_intrinsic_reward(norm_next_obs).reshape(N_STEPS_RND, N_ENVS_RND).T  # [env, step]
        # running mean int reward
        total_reward_per_env = np.array([discounted_reward.update(reward_per_step)
                                         for reward_per_step in total_int_reward.T])
        mean, std, count = np.mean(total_reward_per_env), np.std(total_reward_per_env), len(total_reward_per_env)
        reward_rms.update_from_moments(mean, std ** 2, count)
        # normalize intrinsic reward
        total_int_reward /= np.sqrt(reward_rms.var)
        obs_rms.train()
        with T.no_grad():
            obs_rms(next_obs)  # obs_rms.update(total_next_obs)
        # the same scaling, done in torch by rl_games' norm_only module on the raw rewards
        int_scaled = agent.int_rms(T.as_tensor(total_int_reward.reshape(-1, 1), dtype=T.float32).to(device))

        # train_model: the predictor learns the target's features on a random part of the batch
        next_obs_batch = norm_next_obs
        forward_mse = nn.MSELoss(reduction='none')
        sample_range = np.arange(len(next_obs_batch))
        for i in range(epoch):
            sample_range = next(sample_ranges)  # np.random.shuffle(sample_range): drawn outside
            for j in range(int(len(next_obs_batch) / batch_size)):
                sample_idx = sample_range[batch_size * j:batch_size * (j + 1)]
                predict_next_state_feature, target_next_state_feature = rnd(next_obs_batch[sample_idx])
                forward_loss = forward_mse(predict_next_state_feature, target_next_state_feature.detach()).mean(-1)
                # Proportion of exp used for predictor update (torch.rand(len(forward_loss)) drawn outside)
                mask = T.as_tensor(next(mask_draws), dtype=T.float32).to(device)
                mask = (mask < update_proportion).type(T.float32).to(device)  # .type(torch.FloatTensor): README
                forward_loss = (forward_loss * mask).sum() / T.max(mask.sum(), T.Tensor([1]).to(device))
                optimizer.zero_grad()
                loss = forward_loss
                loss.backward()
                T.nn.utils.clip_grad_norm_(list(rnd.predictor.parameters()), 0.5)
                optimizer.step()
                losses.append(loss.item())
        losses += total_int_reward.flatten().tolist() + int_scaled.flatten().tolist()
        losses += [float(reward_rms.var), obs_rms.count.item()]
    assert obs_rms.running_mean.dtype == T.float64 and all(p.grad is None for p in rnd.target.parameters())
    return losses, numpy_state(agent)


def test_rnd_intrinsic_reward(device):
    torch.manual_seed(11)
    rng = np.random.default_rng(11)
    shape = (N_STEPS_RND, N_ENVS_RND, 1, N_FRAME, N_FRAME)
    warmup = rng.standard_normal((20, 1, N_FRAME, N_FRAME)) * 2 + 1
    rollouts = [rng.standard_normal(shape) * 2 + 1 for _ in range(3)]
    n = N_STEPS_RND * N_ENVS_RND
    sample_ranges = [rng.permutation(n) for _ in range(3 * 2)]
    mask_draws = [rng.random(4) for _ in range(3 * 2 * (n // 4))]
    run_both(train_rnd, device, numpy_state(rnd_agent(torch)), warmup, rollouts, sample_ranges, mask_draws)
