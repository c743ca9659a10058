"""More reinforcement-learning scripts, written as their reference implementations write them.

TD3 (Fujimoto's code), A2C (pytorch-a2c-ppo-acktr style n-step returns), C51 (CleanRL's per-row
projection and Rainbow's flat offset projection with NoisyNet dueling heads and prioritized-replay
weights), QR-DQN's quantile Huber loss, Decision Transformer (min-GPT blocks), a MuZero-style
representation / dynamics / prediction triplet with two-hot support targets (muzero-general), and
evolution strategies / CEM on a policy's flat parameter vector.

Same protocol as test_ported_scripts.py: the networks are built in torch and their state copied into
raygrad, both see the same NumPy data (noise, actions and indices drawn here and passed in), and the
losses and final parameters must agree to float32 accuracy.
"""
import copy
import math

import numpy as np
import pytest

import tensor
from tests.tensor.test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


def prefixed(**modules):
    return {f"{name}.{k}": v for name, m in modules.items() for k, v in numpy_state(m).items()}


# ---- 1. TD3 (Fujimoto's TD3.py): twin critics, target policy smoothing, delayed actor, soft updates ------

S_DIM, A_DIM, MAX_ACTION = 3, 2, 1.0


def td3_nets(T):
    nn, F = T.nn, T.nn.functional

    class Actor(nn.Module):
        def __init__(self, state_dim, action_dim, max_action):
            super(Actor, self).__init__()
            self.l1 = nn.Linear(state_dim, 16)
            self.l2 = nn.Linear(16, 16)
            self.l3 = nn.Linear(16, action_dim)
            self.max_action = max_action

        def forward(self, state):
            a = F.relu(self.l1(state))
            a = F.relu(self.l2(a))
            return self.max_action * T.tanh(self.l3(a))

    class Critic(nn.Module):
        def __init__(self, state_dim, action_dim):
            super(Critic, self).__init__()
            self.l1 = nn.Linear(state_dim + action_dim, 16)
            self.l2 = nn.Linear(16, 16)
            self.l3 = nn.Linear(16, 1)
            self.l4 = nn.Linear(state_dim + action_dim, 16)
            self.l5 = nn.Linear(16, 16)
            self.l6 = nn.Linear(16, 1)

        def forward(self, state, action):
            sa = T.cat([state, action], 1)
            q1 = F.relu(self.l1(sa))
            q1 = F.relu(self.l2(q1))
            q1 = self.l3(q1)
            q2 = F.relu(self.l4(sa))
            q2 = F.relu(self.l5(q2))
            q2 = self.l6(q2)
            return q1, q2

        def Q1(self, state, action):
            sa = T.cat([state, action], 1)
            q1 = F.relu(self.l1(sa))
            q1 = F.relu(self.l2(q1))
            return self.l3(q1)

    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.actor = Actor(S_DIM, A_DIM, MAX_ACTION)
            self.critic = Critic(S_DIM, A_DIM)

    return Both()


def train_td3(T, device, init, batches, noises, discount=0.99, tau=0.05, policy_noise=0.2, noise_clip=0.5,
              policy_freq=2):
    F = T.nn.functional
    device = device_of(T, device)
    both = ported_model(T, td3_nets, init, device)
    actor, critic = both.actor, both.critic
    actor_target = copy.deepcopy(actor)
    actor_optimizer = T.optim.Adam(actor.parameters(), lr=3e-3)
    critic_target = copy.deepcopy(critic)
    critic_optimizer = T.optim.Adam(critic.parameters(), lr=3e-3)
    losses = []
    for total_it, (batch, noise_draw) in enumerate(zip(batches, noises), start=1):
        # Fujimoto's ReplayBuffer.sample builds torch.FloatTensor(...): typed constructors are an accepted
        # difference (README), so the batch comes in through T.FloatTensor's replacement, as_tensor.
        state, action, next_state, reward, not_done = (T.as_tensor(b, dtype=T.float32).to(device) for b in batch)
        with T.no_grad():
            # torch.randn_like(action) in the original: the draw is passed in.
            noise = (T.as_tensor(noise_draw, dtype=action.dtype, device=action.device) * policy_noise
                     ).clamp(-noise_clip, noise_clip)
            next_action = (actor_target(next_state) + noise).clamp(-MAX_ACTION, MAX_ACTION)
            target_Q1, target_Q2 = critic_target(next_state, next_action)
            target_Q = T.min(target_Q1, target_Q2)
            target_Q = reward + not_done * discount * target_Q
        current_Q1, current_Q2 = critic(state, action)
        critic_loss = F.mse_loss(current_Q1, target_Q) + F.mse_loss(current_Q2, target_Q)
        critic_optimizer.zero_grad()
        critic_loss.backward()
        critic_optimizer.step()
        losses.append(critic_loss.item())
        if total_it % policy_freq == 0:
            actor_loss = -critic.Q1(state, actor(state)).mean()
            actor_optimizer.zero_grad()
            actor_loss.backward()
            actor_optimizer.step()
            losses.append(actor_loss.item())
            # The original writes target_param.data.copy_(...): Tensor.data is the raw array in raygrad
            # (README), so the same update runs under no_grad on the parameters.
            with T.no_grad():
                for param, target_param in zip(critic.parameters(), critic_target.parameters()):
                    target_param.copy_(tau * param + (1 - tau) * target_param)
                for param, target_param in zip(actor.parameters(), actor_target.parameters()):
                    target_param.copy_(tau * param + (1 - tau) * target_param)
    return losses, prefixed(both=both, actor_target=actor_target, critic_target=critic_target)


def test_td3(device):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    B = 6
    batches = [(rng.standard_normal((B, S_DIM)), rng.uniform(-1, 1, (B, A_DIM)), rng.standard_normal((B, S_DIM)),
                rng.standard_normal((B, 1)), (rng.random((B, 1)) > 0.2).astype(np.float64)) for _ in range(4)]
    noises = [rng.standard_normal((B, A_DIM)) * 2 for _ in range(4)]  # wide enough that the clamp bites
    run_both(train_td3, device, numpy_state(td3_nets(torch)), batches, noises)


# ---- 2. A2C: vectorized n-step returns, Categorical entropy bonus, RMSprop, clip_grad_norm_ --------------

N_ENVS, N_STEPS, OBS, N_ACT = 3, 4, 4, 3


def a2c_policy(T):
    nn = T.nn

    class Policy(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = nn.Sequential(nn.Linear(OBS, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
            self.critic_linear = nn.Linear(16, 1)
            self.dist_linear = nn.Linear(16, N_ACT)

        def forward(self, x):
            h = self.base(x)
            return self.critic_linear(h), self.dist_linear(h)

    return Policy()


def train_a2c(T, device, init, rollouts, gamma=0.99, value_loss_coef=0.5, entropy_coef=0.01):
    device = device_of(T, device)
    Categorical = T.distributions.Categorical
    model = ported_model(T, a2c_policy, init, device)
    optimizer = T.optim.RMSprop(model.parameters(), lr=7e-3, eps=1e-5, alpha=0.99)
    losses = []
    for obs_np, actions_np, rewards_np, masks_np, next_obs_np in rollouts:
        obs = T.from_numpy(obs_np).float().to(device)          # [N_STEPS, N_ENVS, OBS]
        actions = T.from_numpy(actions_np).to(device)          # [N_STEPS, N_ENVS, 1] int64
        rewards = T.from_numpy(rewards_np).float().to(device)  # [N_STEPS, N_ENVS, 1]
        masks = T.from_numpy(masks_np).float().to(device)
        with T.no_grad():
            next_value = model(T.from_numpy(next_obs_np).float().to(device))[0]
        returns = T.zeros(N_STEPS + 1, N_ENVS, 1, device=device)
        returns[-1] = next_value
        for step in reversed(range(rewards.size(0))):
            returns[step] = returns[step + 1] * gamma * masks[step] + rewards[step]
        values, logits = model(obs.view(-1, *obs.size()[2:]))
        dist = Categorical(logits=logits)
        action_log_probs = dist.log_prob(actions.view(-1)).unsqueeze(-1).view(N_STEPS, N_ENVS, 1)
        dist_entropy = dist.entropy().mean()
        values = values.view(N_STEPS, N_ENVS, 1)
        advantages = returns[:-1] - values
        value_loss = advantages.pow(2).mean()
        action_loss = -(advantages.detach() * action_log_probs).mean()
        optimizer.zero_grad()
        (value_loss * value_loss_coef + action_loss - dist_entropy * entropy_coef).backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        losses += [value_loss.item(), action_loss.item(), dist_entropy.item()]
    return losses, numpy_state(model)


def test_a2c(device):
    torch.manual_seed(1)
    rng = np.random.default_rng(1)
    rollouts = [(rng.standard_normal((N_STEPS, N_ENVS, OBS)), rng.integers(0, N_ACT, (N_STEPS, N_ENVS, 1)),
                 rng.standard_normal((N_STEPS, N_ENVS, 1)), (rng.random((N_STEPS, N_ENVS, 1)) > 0.25) * 1.0,
                 rng.standard_normal((N_ENVS, OBS))) for _ in range(3)]
    run_both(train_a2c, device, numpy_state(a2c_policy(torch)), rollouts)


# ---- 3. C51 (CleanRL c51.py): pmfs over atoms, per-row index_add_ projection into zeros_like ------------

ATOMS, V_MIN, V_MAX = 11, -5.0, 5.0


def c51_network(T):
    nn = T.nn

    class QNetwork(nn.Module):
        def __init__(self, n_atoms=ATOMS, v_min=V_MIN, v_max=V_MAX):
            super().__init__()
            self.n_atoms = n_atoms
            self.register_buffer("atoms", T.linspace(v_min, v_max, steps=n_atoms))
            self.n = N_ACT
            self.network = nn.Sequential(nn.Linear(OBS, 16), nn.ReLU(), nn.Linear(16, self.n * n_atoms))

        def get_action(self, x, action=None):
            logits = self.network(x)
            pmfs = T.softmax(logits.view(len(x), self.n, self.n_atoms), dim=2)
            q_values = (pmfs * self.atoms).sum(2)
            if action is None:
                action = T.argmax(q_values, 1)
            return action, pmfs[T.arange(len(x)), action]

    return QNetwork()


def train_c51(T, device, init, batches, gamma=0.9):
    device = device_of(T, device)
    q_network = ported_model(T, c51_network, init, device)
    target_network = c51_network(T).to(device)
    target_network.load_state_dict(q_network.state_dict())
    optimizer = T.optim.Adam(q_network.parameters(), lr=1e-2, eps=0.01 / 32)
    losses = []
    for obs, actions, rewards, next_obs, dones in batches:
        obs, next_obs = T.Tensor(obs).to(device), T.Tensor(next_obs).to(device)
        actions = T.tensor(actions, device=device)
        rewards, dones = T.Tensor(rewards).to(device), T.Tensor(dones).to(device)
        with T.no_grad():
            _, next_pmfs = target_network.get_action(next_obs)
            next_atoms = rewards + gamma * target_network.atoms * (1 - dones)
            delta_z = target_network.atoms[1] - target_network.atoms[0]
            tz = next_atoms.clamp(V_MIN, V_MAX)
            b = (tz - V_MIN) / delta_z
            l = b.floor().clamp(0, ATOMS - 1)  # noqa: E741
            u = b.ceil().clamp(0, ATOMS - 1)
            d_m_l = (u + (l == u).float() - b) * next_pmfs
            d_m_u = (b - l) * next_pmfs
            target_pmfs = T.zeros_like(next_pmfs)
            for i in range(target_pmfs.size(0)):
                target_pmfs[i].index_add_(0, l[i].long(), d_m_l[i])
                target_pmfs[i].index_add_(0, u[i].long(), d_m_u[i])
        _, old_pmfs = q_network.get_action(obs, actions.flatten())
        loss = (-(target_pmfs * old_pmfs.clamp(min=1e-5, max=1 - 1e-5).log()).sum(-1)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        losses += target_pmfs.sum(-1).tolist()
    return losses, numpy_state(q_network)


def c51_batches(rng, steps=3, B=5):
    # rewards of +-4 push some targets off the support, so the clamp and the l == u case both occur
    return [(rng.standard_normal((B, OBS)), rng.integers(0, N_ACT, (B, 1)),
             rng.choice([-4.0, 0.0, 1.0, 4.0], (B, 1)), rng.standard_normal((B, OBS)),
             (rng.random((B, 1)) < 0.3) * 1.0) for _ in range(steps)]


def test_c51(device):
    torch.manual_seed(2)
    run_both(train_c51, device, numpy_state(c51_network(torch)), c51_batches(np.random.default_rng(2)))


# ---- 4. Rainbow (Kaixhin): NoisyLinear, dueling C51 head, flat-offset projection, PER weights -----------

class_std_init = 0.5


def rainbow_network(T):
    nn, F = T.nn, T.nn.functional

    class NoisyLinear(nn.Module):
        def __init__(self, in_features, out_features, std_init=class_std_init):
            super(NoisyLinear, self).__init__()
            self.in_features = in_features
            self.out_features = out_features
            self.std_init = std_init
            self.weight_mu = nn.Parameter(T.empty(out_features, in_features))
            self.weight_sigma = nn.Parameter(T.empty(out_features, in_features))
            self.register_buffer("weight_epsilon", T.empty(out_features, in_features))
            self.bias_mu = nn.Parameter(T.empty(out_features))
            self.bias_sigma = nn.Parameter(T.empty(out_features))
            self.register_buffer("bias_epsilon", T.empty(out_features))
            self.reset_parameters()
            self.reset_noise(T.randn(in_features), T.randn(out_features))

        def reset_parameters(self):
            mu_range = 1 / math.sqrt(self.in_features)
            # Kaixhin writes self.weight_mu.data.uniform_(...): Tensor.data is the raw array in raygrad
            # (README), so the same in-place fills run under no_grad.
            with T.no_grad():
                self.weight_mu.uniform_(-mu_range, mu_range)
                self.weight_sigma.fill_(self.std_init / math.sqrt(self.in_features))
                self.bias_mu.uniform_(-mu_range, mu_range)
                self.bias_sigma.fill_(self.std_init / math.sqrt(self.out_features))

        def _scale_noise(self, x):
            # x = torch.randn(size) in the original: the draw is passed in.
            return x.sign().mul_(x.abs().sqrt_())

        def reset_noise(self, x_in, x_out):
            epsilon_in = self._scale_noise(x_in.to(self.weight_mu.device))
            epsilon_out = self._scale_noise(x_out.to(self.weight_mu.device))
            self.weight_epsilon.copy_(epsilon_out.ger(epsilon_in))
            self.bias_epsilon.copy_(epsilon_out)

        def forward(self, input):
            if self.training:
                return F.linear(input, self.weight_mu + self.weight_sigma * self.weight_epsilon,
                                self.bias_mu + self.bias_sigma * self.bias_epsilon)
            else:
                return F.linear(input, self.weight_mu, self.bias_mu)

    class DQN(nn.Module):
        def __init__(self, action_space=N_ACT, atoms=ATOMS, hidden_size=16):
            super(DQN, self).__init__()
            self.atoms = atoms
            self.action_space = action_space
            self.fc = nn.Linear(OBS, hidden_size)
            self.fc_h_v = NoisyLinear(hidden_size, hidden_size)
            self.fc_h_a = NoisyLinear(hidden_size, hidden_size)
            self.fc_z_v = NoisyLinear(hidden_size, self.atoms)
            self.fc_z_a = NoisyLinear(hidden_size, action_space * self.atoms)

        def forward(self, x, log=False):
            x = F.relu(self.fc(x))
            v = self.fc_z_v(F.relu(self.fc_h_v(x)))
            a = self.fc_z_a(F.relu(self.fc_h_a(x)))
            v, a = v.view(-1, 1, self.atoms), a.view(-1, self.action_space, self.atoms)
            q = v + a - a.mean(1, keepdim=True)
            if log:
                q = F.log_softmax(q, dim=2)
            else:
                q = F.softmax(q, dim=2)
            return q

        def reset_noise(self, draws):
            for name, module in self.named_children():
                if "fc_" in name and name != "fc":
                    module.reset_noise(*draws[name])

    return DQN()


def noise_draws(rng, hidden=16):
    shapes = {"fc_h_v": (hidden, hidden), "fc_h_a": (hidden, hidden), "fc_z_v": (hidden, ATOMS),
              "fc_z_a": (hidden, N_ACT * ATOMS)}
    return {k: (rng.standard_normal(i), rng.standard_normal(o)) for k, (i, o) in shapes.items()}


def train_rainbow(T, device, init, steps, n=3, discount=0.9, alpha=0.5, beta=0.4):
    device = device_of(T, device)
    online_net = ported_model(T, rainbow_network, init, device)
    online_net.train()
    target_net = rainbow_network(T).to(device)
    target_net.load_state_dict(online_net.state_dict())
    target_net.train()
    for param in target_net.parameters():
        param.requires_grad = False
    support = T.linspace(V_MIN, V_MAX, ATOMS).to(device=device)
    delta_z = (V_MAX - V_MIN) / (ATOMS - 1)
    optimiser = T.optim.Adam(online_net.parameters(), lr=1e-2, eps=1.5e-4)
    capacity = 8
    priorities = T.ones(capacity, device=device)
    losses = []

    def tensors(draws):
        return {k: (T.tensor(a, dtype=T.float32), T.tensor(b, dtype=T.float32)) for k, (a, b) in draws.items()}

    for idxs, states, actions, returns, next_states, nonterminals, online_noise, target_noise in steps:
        online_net.reset_noise(tensors(online_noise))
        states, next_states = T.tensor(states, dtype=T.float32, device=device), T.tensor(
            next_states, dtype=T.float32, device=device)
        actions = T.tensor(actions, dtype=T.int64, device=device)
        returns = T.tensor(returns, dtype=T.float32, device=device)
        nonterminals = T.tensor(nonterminals, dtype=T.float32, device=device).unsqueeze(1)
        batch_size = len(idxs)
        # prioritized replay: P(i) = p_i^alpha / sum p^alpha, w_i = (N * P(i))^-beta / max w
        probs = priorities ** alpha / (priorities ** alpha).sum()
        weights = (capacity * probs[T.as_tensor(idxs, device=device)]) ** -beta
        weights = weights / weights.max()

        log_ps = online_net(states, log=True)
        log_ps_a = log_ps[range(batch_size), actions]
        with T.no_grad():
            pns = online_net(next_states)
            dns = support.expand_as(pns) * pns
            argmax_indices_ns = dns.sum(2).argmax(1)
            target_net.reset_noise(tensors(target_noise))
            pns = target_net(next_states)
            pns_a = pns[range(batch_size), argmax_indices_ns]

            Tz = returns.unsqueeze(1) + nonterminals * (discount ** n) * support.unsqueeze(0)
            Tz = Tz.clamp(min=V_MIN, max=V_MAX)
            b = (Tz - V_MIN) / delta_z
            l, u = b.floor().to(T.int64), b.ceil().to(T.int64)  # noqa: E741
            l[(u > 0) * (l == u)] -= 1
            u[(l < (ATOMS - 1)) * (l == u)] += 1

            m = states.new_zeros(batch_size, ATOMS)
            offset = T.linspace(0, ((batch_size - 1) * ATOMS), batch_size).unsqueeze(1).expand(
                batch_size, ATOMS).to(actions)
            m.view(-1).index_add_(0, (l + offset).view(-1), (pns_a * (u.float() - b)).view(-1))
            m.view(-1).index_add_(0, (u + offset).view(-1), (pns_a * (b - l.float())).view(-1))

        loss = -T.sum(m * log_ps_a, 1)
        online_net.zero_grad()
        (weights * loss).mean().backward()
        T.nn.utils.clip_grad_norm_(online_net.parameters(), 10)
        optimiser.step()
        # mem.update_priorities(idxs, loss.detach().cpu().numpy())
        priorities[T.as_tensor(idxs, device=device)] = T.from_numpy(loss.detach().cpu().numpy()).to(device)
        losses += loss.tolist() + weights.tolist() + m.sum(1).tolist()
    online_net.eval()
    with T.no_grad():
        losses += online_net(states).flatten().tolist()
    return losses, prefixed(online=online_net)


def test_rainbow_noisy_dueling_c51_with_prioritized_weights(device):
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    B = 5
    steps = [(rng.choice(8, B, replace=False), rng.standard_normal((B, OBS)), rng.integers(0, N_ACT, B),
              rng.choice([-6.0, 0.0, 0.5, 6.0], B), rng.standard_normal((B, OBS)), (rng.random(B) > 0.3) * 1.0,
              noise_draws(rng), noise_draws(rng)) for _ in range(3)]
    run_both(train_rainbow, device, numpy_state(rainbow_network(torch)), steps)


# ---- 5. QR-DQN: quantile Huber loss with tau hat, pairwise TD by unsqueeze --------------------------------

N_QUANT = 6


def qr_network(T):
    nn = T.nn
    return nn.Sequential(nn.Linear(OBS, 16), nn.ReLU(), nn.Linear(16, N_ACT * N_QUANT))


def quantile_huber_loss(T, current, target, kappa=1.0):
    """current [B, N], target [B, N'] -> scalar."""
    N = current.size(1)
    tau = ((T.arange(N, device=current.device) + 0.5) / N).view(1, -1, 1)
    td = target.unsqueeze(1) - current.unsqueeze(2)  # [B, N, N']
    huber = T.where(td.abs() <= kappa, 0.5 * td.pow(2), kappa * (td.abs() - 0.5 * kappa))
    loss = T.abs(tau - (td.detach() < 0).float()) * huber / kappa
    return loss.sum(dim=1).mean(dim=1).mean()


def train_qr_dqn(T, device, init, batches, gamma=0.9):
    device = device_of(T, device)
    net = ported_model(T, qr_network, init, device)
    target = copy.deepcopy(net)
    optimizer = T.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for obs, actions, rewards, next_obs, dones in batches:
        obs, next_obs = T.as_tensor(obs, dtype=T.float32, device=device), T.as_tensor(next_obs, device=device).float()
        actions = T.as_tensor(actions, device=device)
        rewards = T.as_tensor(rewards, device=device).float()
        dones = T.as_tensor(dones, device=device).float()
        B = obs.shape[0]
        with T.no_grad():
            next_quantiles = target(next_obs).view(B, N_ACT, N_QUANT)
            next_actions = next_quantiles.mean(dim=2).argmax(dim=1)
            next_q = next_quantiles.gather(1, next_actions[:, None, None].expand(B, 1, N_QUANT)).squeeze(1)
            target_quantiles = rewards[:, None] + gamma * (1 - dones[:, None]) * next_q
        current = net(obs).view(B, N_ACT, N_QUANT)
        current = T.gather(current, dim=1, index=actions[:, None, None].expand(B, 1, N_QUANT)).squeeze(dim=1)
        loss = quantile_huber_loss(T, current, target_quantiles)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(net)


def test_qr_dqn(device):
    torch.manual_seed(4)
    rng = np.random.default_rng(4)
    B = 5
    batches = [(rng.standard_normal((B, OBS)), rng.integers(0, N_ACT, B), rng.standard_normal(B) * 3,
                rng.standard_normal((B, OBS)), (rng.random(B) < 0.3)) for _ in range(3)]
    run_both(train_qr_dqn, device, numpy_state(qr_network(torch)), batches)


def test_tau_hat_of_an_integer_arange_is_float32(device):
    tau = (tensor.arange(4, device=device) + 0.5) / 4
    assert tau.dtype == tensor.float32
    np.testing.assert_allclose(tau.cpu().numpy(), [0.125, 0.375, 0.625, 0.875])


# ---- 6. Decision Transformer (official gym code on min-GPT blocks): interleaved tokens, padded batches ----

DT_S, DT_A, DT_H, DT_K, DT_EP = 3, 2, 16, 4, 12


def decision_transformer(T, n_layer=2, n_head=2, pdrop=0.0):
    nn, F = T.nn, T.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, block_size):
            super().__init__()
            self.key = nn.Linear(n_embd, n_embd)
            self.query = nn.Linear(n_embd, n_embd)
            self.value = nn.Linear(n_embd, n_embd)
            self.attn_drop = nn.Dropout(pdrop)
            self.resid_drop = nn.Dropout(pdrop)
            self.proj = nn.Linear(n_embd, n_embd)
            self.register_buffer("mask", T.tril(T.ones(block_size, block_size)).view(1, 1, block_size, block_size))
            self.n_head = n_head

        def forward(self, x, attention_mask=None):
            B, L, C = x.size()
            k = self.key(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
            q = self.query(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
            v = self.value(x).view(B, L, self.n_head, C // self.n_head).transpose(1, 2)
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.mask[:, :, :L, :L] == 0, float("-inf"))
            if attention_mask is not None:  # HF GPT2's additive padding mask
                att = att + attention_mask
            att = F.softmax(att, dim=-1)
            att = self.attn_drop(att)
            y = att @ v
            y = y.transpose(1, 2).contiguous().view(B, L, C)
            return self.resid_drop(self.proj(y))

    class Block(nn.Module):
        def __init__(self, n_embd, block_size):
            super().__init__()
            self.ln1 = nn.LayerNorm(n_embd)
            self.ln2 = nn.LayerNorm(n_embd)
            self.attn = CausalSelfAttention(n_embd, block_size)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                     nn.Dropout(pdrop))

        def forward(self, x, attention_mask=None):
            x = x + self.attn(self.ln1(x), attention_mask)
            x = x + self.mlp(self.ln2(x))
            return x

    class DecisionTransformer(nn.Module):
        def __init__(self, state_dim, act_dim, hidden_size, max_length, max_ep_len):
            super().__init__()
            self.state_dim, self.act_dim, self.hidden_size = state_dim, act_dim, hidden_size
            self.embed_timestep = nn.Embedding(max_ep_len, hidden_size)
            self.embed_return = T.nn.Linear(1, hidden_size)
            self.embed_state = T.nn.Linear(self.state_dim, hidden_size)
            self.embed_action = T.nn.Linear(self.act_dim, hidden_size)
            self.embed_ln = nn.LayerNorm(hidden_size)
            self.blocks = nn.ModuleList([Block(hidden_size, 3 * max_length) for _ in range(n_layer)])
            self.ln_f = nn.LayerNorm(hidden_size)
            self.predict_state = T.nn.Linear(hidden_size, self.state_dim)
            self.predict_action = nn.Sequential(*([nn.Linear(hidden_size, self.act_dim)] + [nn.Tanh()]))
            self.predict_return = T.nn.Linear(hidden_size, 1)

        def forward(self, states, actions, rewards, returns_to_go, timesteps, attention_mask=None):
            batch_size, seq_length = states.shape[0], states.shape[1]
            if attention_mask is None:
                attention_mask = T.ones((batch_size, seq_length), dtype=T.long)
            state_embeddings = self.embed_state(states)
            action_embeddings = self.embed_action(actions)
            returns_embeddings = self.embed_return(returns_to_go)
            time_embeddings = self.embed_timestep(timesteps)
            state_embeddings = state_embeddings + time_embeddings
            action_embeddings = action_embeddings + time_embeddings
            returns_embeddings = returns_embeddings + time_embeddings
            # (R_1, s_1, a_1, R_2, s_2, a_2, ...)
            stacked_inputs = T.stack(
                (returns_embeddings, state_embeddings, action_embeddings), dim=1
            ).permute(0, 2, 1, 3).reshape(batch_size, 3 * seq_length, self.hidden_size)
            stacked_inputs = self.embed_ln(stacked_inputs)
            stacked_attention_mask = T.stack(
                (attention_mask, attention_mask, attention_mask), dim=1
            ).permute(0, 2, 1).reshape(batch_size, 3 * seq_length)
            extended = stacked_attention_mask[:, None, None, :].to(dtype=stacked_inputs.dtype)
            extended = (1.0 - extended) * T.finfo(stacked_inputs.dtype).min
            x = stacked_inputs
            for block in self.blocks:
                x = block(x, extended)
            x = self.ln_f(x)
            h = x  # min-GPT's atari code reads the state tokens as h[:, 1::3]
            x = x.reshape(batch_size, seq_length, 3, self.hidden_size).permute(0, 2, 1, 3)
            return_preds = self.predict_return(x[:, 2])
            state_preds = self.predict_state(x[:, 2])
            action_preds = self.predict_action(x[:, 1])
            return state_preds, action_preds, return_preds, self.predict_action(h[:, 1::3, :])

    return DecisionTransformer(DT_S, DT_A, DT_H, DT_K, DT_EP)


def discount_cumsum(x, gamma):
    out = np.zeros_like(x)
    out[-1] = x[-1]
    for t in reversed(range(x.shape[0] - 1)):
        out[t] = x[t] + gamma * out[t + 1]
    return out


def dt_get_batch(trajectories, picks, max_len=DT_K, scale=10.0):
    """The official get_batch: left-pad to max_len, masks of 0s then 1s (float64, as np.concatenate gives)."""
    s, a, r, rtg, timesteps, mask = [], [], [], [], [], []
    for traj_i, si in picks:
        traj = trajectories[traj_i]
        s.append(traj["observations"][si:si + max_len].reshape(1, -1, DT_S))
        a.append(traj["actions"][si:si + max_len].reshape(1, -1, DT_A))
        r.append(traj["rewards"][si:si + max_len].reshape(1, -1, 1))
        timesteps.append(np.arange(si, si + s[-1].shape[1]).reshape(1, -1))
        timesteps[-1][timesteps[-1] >= DT_EP] = DT_EP - 1
        rtg.append(discount_cumsum(traj["rewards"][si:], gamma=1.)[:s[-1].shape[1] + 1].reshape(1, -1, 1))
        if rtg[-1].shape[1] <= s[-1].shape[1]:
            rtg[-1] = np.concatenate([rtg[-1], np.zeros((1, 1, 1))], axis=1)
        tlen = s[-1].shape[1]
        s[-1] = np.concatenate([np.zeros((1, max_len - tlen, DT_S)), s[-1]], axis=1)
        a[-1] = np.concatenate([np.ones((1, max_len - tlen, DT_A)) * -10., a[-1]], axis=1)
        r[-1] = np.concatenate([np.zeros((1, max_len - tlen, 1)), r[-1]], axis=1)
        rtg[-1] = np.concatenate([np.zeros((1, max_len - tlen, 1)), rtg[-1]], axis=1) / scale
        timesteps[-1] = np.concatenate([np.zeros((1, max_len - tlen)), timesteps[-1]], axis=1)
        mask.append(np.concatenate([np.zeros((1, max_len - tlen)), np.ones((1, tlen))], axis=1))
    return tuple(np.concatenate(x, axis=0) for x in (s, a, r, rtg, timesteps, mask))


def train_decision_transformer(T, device, init, batches, warmup_steps=2):
    device = device_of(T, device)
    model = ported_model(T, decision_transformer, init, device)
    optimizer = T.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lambda steps: min((steps + 1) / warmup_steps, 1))
    model.train()
    losses = []
    for s, a, r, rtg, timesteps, mask in batches:
        states = T.from_numpy(s).to(dtype=T.float32, device=device)
        actions = T.from_numpy(a).to(dtype=T.float32, device=device)
        rewards = T.from_numpy(r).to(dtype=T.float32, device=device)
        rtg = T.from_numpy(rtg).to(dtype=T.float32, device=device)
        timesteps = T.from_numpy(timesteps).to(dtype=T.long, device=device)
        attention_mask = T.from_numpy(mask).to(device=device)
        action_target = T.clone(actions)
        state_preds, action_preds, reward_preds, strided = model.forward(
            states, actions, rewards, rtg[:, :-1], timesteps, attention_mask=attention_mask)
        act_dim = action_preds.shape[2]
        action_preds = action_preds.reshape(-1, act_dim)[attention_mask.reshape(-1) > 0]
        action_target = action_target.reshape(-1, act_dim)[attention_mask.reshape(-1) > 0]
        loss = T.mean((action_preds - action_target) ** 2)
        optimizer.zero_grad()
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), .25)
        optimizer.step()
        scheduler.step()
        losses += [loss.detach().cpu().item(), (strided - action_preds.new_zeros(1)).abs().sum().item()]
    return losses, numpy_state(model)


def test_decision_transformer(device):
    torch.manual_seed(5)
    rng = np.random.default_rng(5)
    trajectories = [{"observations": rng.standard_normal((n, DT_S)), "actions": rng.uniform(-1, 1, (n, DT_A)),
                     "rewards": rng.standard_normal(n)} for n in (3, 7, 14)]
    # start indices near a trajectory's end give short, left-padded windows
    batches = [dt_get_batch(trajectories, picks) for picks in ([(0, 0), (1, 5), (2, 10)], [(2, 0), (1, 1), (0, 2)],
                                                               [(2, 11), (1, 3), (2, 6)])]
    # Attention is invariant to the key bias (it adds q.b_k to a whole row of scores), so its gradient is
    # zero up to rounding (~1e-8 against ~1e-1 elsewhere) and AdamW turns that rounding noise into steps of
    # size lr: both libraries' key biases wander apart by noise. Every other parameter must agree.
    run_both(train_decision_transformer, device, numpy_state(decision_transformer(torch)), batches,
             state_view=lambda state: {k: v for k, v in state.items() if not k.endswith("attn.key.bias")})


# ---- 7. MuZero (muzero-general's FullyConnected network and Trainer.update_weights) --------------------

MZ_OBS, MZ_ACT, MZ_ENC, MZ_SUPPORT, MZ_UNROLL = 4, 3, 5, 4, 3


def support_fns(T):
    def support_to_scalar(logits, support_size):
        probabilities = T.softmax(logits, dim=1)
        support = (
            T.tensor([x for x in range(-support_size, support_size + 1)])
            .expand(probabilities.shape)
            .float()
            .to(device=probabilities.device)
        )
        x = T.sum(support * probabilities, dim=1, keepdim=True)
        # Invert the scaling (defined in https://arxiv.org/abs/1805.11593)
        x = T.sign(x) * (((T.sqrt(1 + 4 * 0.001 * (T.abs(x) + 1 + 0.001)) - 1) / (2 * 0.001)) ** 2 - 1)
        return x

    def scalar_to_support(x, support_size):
        # Reduce the scale (defined in https://arxiv.org/abs/1805.11593)
        x = T.sign(x) * (T.sqrt(T.abs(x) + 1) - 1) + 0.001 * x
        # Encode on a vector
        x = T.clamp(x, -support_size, support_size)
        floor = x.floor()
        prob = x - floor
        logits = T.zeros(x.shape[0], x.shape[1], 2 * support_size + 1).to(x.device)
        logits.scatter_(2, (floor + support_size).long().unsqueeze(-1), (1 - prob).unsqueeze(-1))
        indexes = floor + support_size + 1
        prob = prob.masked_fill_(2 * support_size < indexes, 0.0)
        indexes = indexes.masked_fill_(2 * support_size < indexes, 0.0)
        logits.scatter_(2, indexes.long().unsqueeze(-1), prob.unsqueeze(-1))
        return logits

    return support_to_scalar, scalar_to_support


def muzero_network(T):
    nn = T.nn

    def mlp(input_size, layer_sizes, output_size, output_activation=nn.Identity, activation=nn.ELU):
        sizes = [input_size] + layer_sizes + [output_size]
        layers = []
        for i in range(len(sizes) - 1):
            act = activation if i < len(sizes) - 2 else output_activation
            layers += [nn.Linear(sizes[i], sizes[i + 1]), act()]
        return nn.Sequential(*layers)

    class MuZeroFullyConnectedNetwork(nn.Module):
        def __init__(self, observation_shape, stacked_observations, action_space_size, encoding_size,
                     fc_reward_layers, fc_value_layers, fc_policy_layers, fc_representation_layers,
                     fc_dynamics_layers, support_size):
            super().__init__()
            self.action_space_size = action_space_size
            self.full_support_size = 2 * support_size + 1
            self.representation_network = nn.DataParallel(mlp(
                observation_shape[0] * observation_shape[1] * observation_shape[2] * (stacked_observations + 1)
                + stacked_observations * observation_shape[1] * observation_shape[2],
                fc_representation_layers, encoding_size))
            self.dynamics_encoded_state_network = nn.DataParallel(
                mlp(encoding_size + self.action_space_size, fc_dynamics_layers, encoding_size))
            self.dynamics_reward_network = nn.DataParallel(mlp(encoding_size, fc_reward_layers,
                                                               self.full_support_size))
            self.prediction_policy_network = nn.DataParallel(mlp(encoding_size, fc_policy_layers,
                                                                 self.action_space_size))
            self.prediction_value_network = nn.DataParallel(mlp(encoding_size, fc_value_layers,
                                                                self.full_support_size))

        def prediction(self, encoded_state):
            policy_logits = self.prediction_policy_network(encoded_state)
            value = self.prediction_value_network(encoded_state)
            return policy_logits, value

        def representation(self, observation):
            encoded_state = self.representation_network(observation.view(observation.shape[0], -1))
            # Scale encoded state between [0, 1] (See appendix paper Training)
            min_encoded_state = encoded_state.min(1, keepdim=True)[0]
            max_encoded_state = encoded_state.max(1, keepdim=True)[0]
            scale_encoded_state = max_encoded_state - min_encoded_state
            scale_encoded_state[scale_encoded_state < 1e-5] += 1e-5
            encoded_state_normalized = (encoded_state - min_encoded_state) / scale_encoded_state
            return encoded_state_normalized

        def dynamics(self, encoded_state, action):
            # Stack encoded_state with a game specific one hot encoded action (See paper appendix Network Architecture)
            action_one_hot = T.zeros((action.shape[0], self.action_space_size)).to(action.device).float()
            action_one_hot.scatter_(1, action.long(), 1.0)
            x = T.cat((encoded_state, action_one_hot), dim=1)
            next_encoded_state = self.dynamics_encoded_state_network(x)
            reward = self.dynamics_reward_network(next_encoded_state)
            min_next_encoded_state = next_encoded_state.min(1, keepdim=True)[0]
            max_next_encoded_state = next_encoded_state.max(1, keepdim=True)[0]
            scale_next_encoded_state = max_next_encoded_state - min_next_encoded_state
            scale_next_encoded_state[scale_next_encoded_state < 1e-5] += 1e-5
            next_encoded_state_normalized = (next_encoded_state - min_next_encoded_state) / scale_next_encoded_state
            return next_encoded_state_normalized, reward

        def initial_inference(self, observation):
            encoded_state = self.representation(observation)
            policy_logits, value = self.prediction(encoded_state)
            # reward equal to 0 for consistency: log of a one-hot (NumPy warns on log(0); README)
            with np.errstate(divide="ignore"):
                reward = T.log(
                    (T.zeros(1, self.full_support_size)
                     .scatter(1, T.tensor([[self.full_support_size // 2]]).long(), 1.0)
                     .repeat(len(observation), 1)
                     .to(observation.device))
                )
            return value, reward, policy_logits, encoded_state

        def recurrent_inference(self, encoded_state, action):
            next_encoded_state, reward = self.dynamics(encoded_state, action)
            policy_logits, value = self.prediction(next_encoded_state)
            return value, reward, policy_logits, next_encoded_state

    model = MuZeroFullyConnectedNetwork((1, 1, MZ_OBS), 0, MZ_ACT, MZ_ENC, [8], [8], [8], [8], [8], MZ_SUPPORT)
    # Where torch sees a GPU, its DataParallel takes device_ids=[0] and refuses a module on the CPU, where the oracle
    # runs: give it the empty device_ids of a CPU-only machine, where it runs the module whole (raygrad's are empty)
    for module in model.modules():
        if isinstance(module, nn.DataParallel):
            module.device_ids = []
    return model


def muzero_loss_function(T, value, reward, policy_logits, target_value, target_reward, target_policy):
    # Cross-entropy seems to have a better convergence than MSE
    value_loss = (-target_value * T.nn.LogSoftmax(dim=1)(value)).sum(1)
    reward_loss = (-target_reward * T.nn.LogSoftmax(dim=1)(reward)).sum(1)
    policy_loss = (-target_policy * T.nn.LogSoftmax(dim=1)(policy_logits)).sum(1)
    return value_loss, reward_loss, policy_loss


def train_muzero(T, device, init, batches, value_loss_weight=0.25, PER_alpha=0.5):
    device = device_of(T, device)
    support_to_scalar, scalar_to_support = support_fns(T)
    model = ported_model(T, muzero_network, init, device)
    model.train()
    optimizer = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    for training_step, batch in enumerate(batches):
        for param_group in optimizer.param_groups:
            param_group["lr"] = 0.05 * 0.9 ** training_step
        (observation_batch, action_batch, target_value, target_reward, target_policy, weight_batch,
         gradient_scale_batch) = batch
        target_value_scalar = np.array(target_value, dtype="float32")
        priorities = np.zeros_like(target_value_scalar)
        device = next(model.parameters()).device
        weight_batch = T.tensor(weight_batch.copy()).float().to(device)
        observation_batch = T.tensor(np.array(observation_batch)).float().to(device)
        action_batch = T.tensor(action_batch).long().to(device).unsqueeze(-1)
        target_value = T.tensor(target_value).float().to(device)
        target_reward = T.tensor(target_reward).float().to(device)
        target_policy = T.tensor(target_policy).float().to(device)
        gradient_scale_batch = T.tensor(gradient_scale_batch).float().to(device)
        target_value = scalar_to_support(target_value, MZ_SUPPORT)
        target_reward = scalar_to_support(target_reward, MZ_SUPPORT)

        value, reward, policy_logits, hidden_state = model.initial_inference(observation_batch)
        predictions = [(value, reward, policy_logits)]
        for i in range(1, action_batch.shape[1]):
            value, reward, policy_logits, hidden_state = model.recurrent_inference(hidden_state, action_batch[:, i])
            # Scale the gradient at the start of the dynamics function (See paper appendix Training)
            hidden_state.register_hook(lambda grad: grad * 0.5)
            predictions.append((value, reward, policy_logits))

        value_loss, reward_loss, policy_loss = (0, 0, 0)
        value, reward, policy_logits = predictions[0]
        # Ignore reward loss for the first batch step (it is 0 * -inf = nan there: NumPy warns; README)
        with np.errstate(invalid="ignore"):
            current_value_loss, _, current_policy_loss = muzero_loss_function(
                T, value.squeeze(-1), reward.squeeze(-1), policy_logits, target_value[:, 0], target_reward[:, 0],
                target_policy[:, 0])
        value_loss += current_value_loss
        policy_loss += current_policy_loss
        pred_value_scalar = support_to_scalar(value, MZ_SUPPORT).detach().cpu().numpy().squeeze()
        priorities[:, 0] = np.abs(pred_value_scalar - target_value_scalar[:, 0]) ** PER_alpha
        for i in range(1, len(predictions)):
            value, reward, policy_logits = predictions[i]
            current_value_loss, current_reward_loss, current_policy_loss = muzero_loss_function(
                T, value.squeeze(-1), reward.squeeze(-1), policy_logits, target_value[:, i], target_reward[:, i],
                target_policy[:, i])
            # Scale gradient by the number of unroll steps (See paper appendix Training)
            current_value_loss.register_hook(lambda grad: grad / gradient_scale_batch[:, i])
            current_reward_loss.register_hook(lambda grad: grad / gradient_scale_batch[:, i])
            current_policy_loss.register_hook(lambda grad: grad / gradient_scale_batch[:, i])
            value_loss += current_value_loss
            reward_loss += current_reward_loss
            policy_loss += current_policy_loss
            pred_value_scalar = support_to_scalar(value, MZ_SUPPORT).detach().cpu().numpy().squeeze()
            priorities[:, i] = np.abs(pred_value_scalar - target_value_scalar[:, i]) ** PER_alpha
        loss = value_loss * value_loss_weight + reward_loss + policy_loss
        loss *= weight_batch
        loss = loss.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item(), value_loss.mean().item(), reward_loss.mean().item(), policy_loss.mean().item()]
        losses += priorities.ravel().tolist()
        # the two-hot targets are distributions whose expectation is h(x)
        losses += target_value.sum(-1).flatten().tolist()
    return losses, numpy_state(model)


def muzero_batches(rng, steps=3, B=4):
    out = []
    for _ in range(steps):
        policy = rng.random((B, MZ_UNROLL + 1, MZ_ACT))
        out.append((rng.standard_normal((B, 1, 1, MZ_OBS)), rng.integers(0, MZ_ACT, (B, MZ_UNROLL + 1)),
                    # values up to +-40 reach past the support's edge (h(40) > 4), integers land on atoms
                    np.concatenate([rng.standard_normal((B, MZ_UNROLL)) * 15, [[3.0], [-40.0], [0.0], [8.0]]], 1),
                    rng.standard_normal((B, MZ_UNROLL + 1)) * 2,
                    policy / policy.sum(-1, keepdims=True), rng.random(B) + 0.5,
                    np.full((B, MZ_UNROLL + 1), float(MZ_UNROLL))))
    return out


def test_muzero(device):
    torch.manual_seed(6)
    run_both(train_muzero, device, numpy_state(muzero_network(torch)), muzero_batches(np.random.default_rng(6)))


def test_scalar_support_round_trip(device):
    """Two-hot encoding then decoding (with logits = log probs) gives the scalar back."""
    support_to_scalar, scalar_to_support = support_fns(tensor)
    x = tensor.tensor([[-7.5, -1.0, 0.0, 0.3, 2.0, 9.0]], device=device)
    probs = scalar_to_support(x, 5)
    want = support_fns(torch)[1](torch.tensor(x.cpu().numpy()), 5)
    np.testing.assert_allclose(probs.cpu().numpy(), want.numpy(), atol=1e-6)
    back = support_to_scalar(probs[0].clamp_min(1e-30).log(), 5)
    np.testing.assert_allclose(back.cpu().numpy().ravel(), x.cpu().numpy().ravel(), rtol=1e-3, atol=1e-3)


# ---- 8. Evolution strategies / CEM on a policy's flat parameter vector ---------------------------------

def es_policy(T):
    nn = T.nn
    return nn.Sequential(nn.Linear(OBS, 8), nn.Tanh(), nn.Linear(8, 2))


def train_es(T, device, init, obs, target, noises, cem_samples, sigma=0.1, lr=0.05, n_elite=3):
    from_vector = T.nn.utils.vector_to_parameters
    to_vector = T.nn.utils.parameters_to_vector
    device = device_of(T, device)
    policy = ported_model(T, es_policy, init, device)
    obs = T.as_tensor(obs, dtype=T.float32, device=device)
    target = T.as_tensor(target, dtype=T.float32, device=device)
    optimizer = T.optim.Adam(policy.parameters(), lr=lr)

    def evaluate():
        return -((policy(obs) - target) ** 2).mean()

    losses = []
    # OpenAI-ES with centered ranks, the gradient handed to Adam through .grad
    for noise in noises:
        noise = T.from_numpy(noise).float().to(device)  # [pop, n_params]
        pop = noise.shape[0]
        with T.no_grad():
            theta = to_vector(policy.parameters())
            fitness = []
            for i in range(pop):
                from_vector(theta + sigma * noise[i], policy.parameters())
                fitness.append(evaluate())
            fitness = T.stack(fitness)
            ranks = T.empty_like(fitness)
            ranks[fitness.argsort()] = T.arange(pop, dtype=fitness.dtype, device=device)
            shaped = ranks / (pop - 1) - 0.5
            assert T.equal(fitness.argsort().argsort(), ranks.long())
            grad = (shaped @ noise) / (pop * sigma)
            from_vector(theta, policy.parameters())
        pointer = 0
        for p in policy.parameters():
            n = p.numel()
            p.grad = -grad[pointer:pointer + n].view_as(p).clone()
            pointer += n
        optimizer.step()
        losses += [fitness.mean().item(), fitness.max().item()]
    # CEM: sample around a mean, refit mean / std to the elites
    with T.no_grad():
        mean = to_vector(policy.parameters())
        std = T.full_like(mean, 0.1)
        for eps in cem_samples:
            samples = mean + std * T.as_tensor(eps, dtype=T.float32, device=device)
            fitness = []
            for s in samples:
                from_vector(s, policy.parameters())
                fitness.append(evaluate().item())
            elite_idx = T.tensor(fitness, device=device).topk(n_elite).indices
            elites = samples[elite_idx]
            mean, std = elites.mean(0), elites.std(0) + 1e-3
            losses += sorted(fitness)
        from_vector(mean, policy.parameters())
        losses.append(evaluate().item())
    return losses, numpy_state(policy)


def test_evolution_strategies_and_cem(device):
    torch.manual_seed(7)
    rng = np.random.default_rng(7)
    n_params = sum(p.numel() for p in es_policy(torch).parameters())
    half = [rng.standard_normal((3, n_params)) for _ in range(3)]
    noises = [np.concatenate([h, -h]) for h in half]  # mirrored sampling
    cem = [rng.standard_normal((6, n_params)) for _ in range(2)]
    run_both(train_es, device, numpy_state(es_policy(torch)), rng.standard_normal((5, OBS)),
             rng.standard_normal((5, 2)), noises, cem)


def test_prioritized_sampling_follows_the_priorities(device):
    """The draw the Rainbow test passes in: torch.multinomial(P, n, replacement=True) over p^alpha."""
    priorities = tensor.tensor([0.1, 1.0, 2.0, 4.0], device=device)
    probs = priorities ** 0.5 / (priorities ** 0.5).sum()
    idx = tensor.multinomial(probs, 20000, replacement=True)
    assert idx.dtype == tensor.int64 and idx.shape == (20000,)
    freq = tensor.bincount(idx, minlength=4).float() / 20000
    np.testing.assert_allclose(freq.cpu().numpy(), probs.cpu().numpy(), atol=0.015)
