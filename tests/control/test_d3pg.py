"""Algorithm 1's derivatives against central finite differences, through the simulator itself."""

import dataclasses

import numpy as np
import pytest

from fastd3pg.control import core, d3pg
from fastd3pg.control.d3pg import D3PGAgent, D3PGConfig
from fastd3pg.physics import make, names
from fastd3pg.testing import central_difference, relative_error

TASKS = [t for t in ("MassPoint", "Pendulum", "CartPole", "MountainCar") if t in names()]


def small_agent(task, seed=0, **overrides):
    env = make(task)
    cfg = dataclasses.replace(D3PGConfig(hidden=(12, 10), batch_size=7, layer_norm=True,
                                         out_init=0.3, activation="tanh"), **overrides)
    cfg.validate()
    agent = D3PGAgent(env, cfg, seed, total_steps=64)
    rng = np.random.default_rng(seed)
    # Random, non-trivial normalizer statistics and replay contents.
    n = env.state_dim
    mean, std = rng.normal(0, 0.3, n), rng.uniform(0.5, 2.0, n)
    count = 50.0  # normalizer layout: [count, mean, sum of squared deviations]
    agent.stats.obs[:] = np.concatenate([[count], mean, std**2 * count])
    agent.stats.ret[:] = [40.0, -3.0, 2.5**2 * 40]
    for arr in (agent.nets.theta, agent.nets.theta_targ, agent.nets.phi, agent.nets.phi_targ):
        arr += rng.normal(0, 0.2, arr.shape)
    states, _ = zip(*(env.reset(seed=int(k)) for k in range(64)))
    S = np.array(states) + rng.normal(0, 0.05, (64, n))
    A = rng.uniform(-0.9, 0.9, (64, env.action_dim))
    for s, a in zip(S, A):
        tr = env.transition(s, a)
        from fastd3pg.control import replay

        replay.add(agent.buf, s, a, tr.reward, tr.next_state, tr.terminated, tr.J_s, tr.J_a,
                   tr.dr_ds, tr.dr_da)
    agent.work.batch.idx[:] = np.arange(7) * 3
    return env, agent


def refresh(agent):
    d3pg.refresh_moments(agent.stats, agent.settings, agent.work.batch, agent.work.ret)


def obs_moments(agent):
    refresh(agent)
    return agent.work.batch.obs_mean.copy(), agent.work.batch.obs_std.copy()


def ret_moments(agent):
    refresh(agent)
    return agent.work.ret[0], agent.work.ret[1]


def normalized(agent, S):
    mean, std = obs_moments(agent)
    return np.clip((S - mean) / (std + 1e-8), -agent.config.obs_clip, agent.config.obs_clip)


def td_target(agent, s, a):
    """y(s, a) = r + γ (1 - done) Q'(Γ(s, a), π'(Γ(s, a))), through the simulator."""
    tr = agent.env.transition(s, a)
    x2 = normalized(agent, tr.next_state[None])
    a2 = agent.actor.forward(agent.nets.theta_targ, x2)
    q2 = agent.critic.forward(agent.nets.phi_targ, np.hstack([x2, a2]))[0, 0]
    mu, sigma = ret_moments(agent)
    return tr.reward + agent.config.gamma * (1 - tr.terminated) * (sigma * q2 + mu)


@pytest.mark.parametrize("task", TASKS)
def test_gradient_targets_match_finite_differences_through_the_simulator(task):
    env, agent = small_agent(task)
    a = agent
    mean, std = obs_moments(a)
    mu, sigma = ret_moments(a)
    d3pg.td_and_gradient_targets(a.actor.spec, a.critic.spec, a.nets, a.settings, a.buf,
                                 a.work.batch, a.work.ret)
    checked = 0
    for b, i in enumerate(a.work.batch.idx):
        s, act = a.buf.s[i].copy(), a.buf.a[i].copy()
        assert a.work.batch.Y[b] == pytest.approx(td_target(a, s, act), rel=1e-12, abs=1e-12)
        # Skip points whose next state is within a step of the normalizer's clip.
        z2 = (a.buf.s_next[i] - mean) / (std + 1e-8)
        if np.any(np.abs(np.abs(z2) - a.config.obs_clip) < 1e-4):
            continue
        fd_s = central_difference(lambda x: td_target(a, x, act), s)
        fd_a = central_difference(lambda u: td_target(a, s, u), act)
        assert relative_error(a.work.batch.GS[b], fd_s) < 1e-6
        assert relative_error(a.work.batch.GA[b], fd_a) < 1e-6
        # Normalized coordinates: ∂ỹ/∂s̃ with s = μ + s̃ (σ + 1e-8) and ỹ = (y - μ_Q)/σ_Q.
        scale = std + 1e-8
        fd_norm = central_difference(
            lambda z: (td_target(a, mean + z * scale, act) - mu) / sigma, (s - mean) / scale)
        assert relative_error(a.work.batch.GS[b] * scale / sigma, fd_norm) < 1e-6
        checked += 1
    assert checked >= 4


def critic_loss(agent, phi):
    """L(φ) of the paper's Algorithm 1 in normalized coordinates, recomputed in NumPy."""
    a, cfg = agent, agent.config
    n = a.env.state_dim
    mu, sigma = ret_moments(a)
    mean, std = obs_moments(a)
    S = a.buf.s[a.work.batch.idx]
    X = np.hstack([normalized(a, S), a.buf.a[a.work.batch.idx]])
    mask = (np.abs((S - mean) / (std + 1e-8)) < cfg.obs_clip).astype(float)
    Q = a.critic.forward(phi, X)[:, 0]
    G = a.critic.input_grad(phi, X)
    y = (a.work.batch.Y - mu) / sigma
    gs = a.work.batch.GS * (std + 1e-8) / sigma * mask
    ga = a.work.batch.GA / sigma
    Gs = G[:, :n] * mask
    loss = np.mean((Q - y) ** 2)
    if cfg.reg == "l2":
        loss += cfg.w2 * np.mean(np.sum((Gs - gs) ** 2, 1)) + cfg.w1 * np.mean(np.sum((G[:, n:] - ga) ** 2, 1))
    else:
        def cos(u, v):
            return np.sum(u * v, 1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
        loss += cfg.w2 * np.mean(1 - cos(Gs, gs)) + cfg.w1 * np.mean(1 - cos(G[:, n:], ga))
    l2 = a.critic.hidden_weight_mask()
    return loss + 0.5 * cfg.critic_l2 * np.sum(phi[l2] ** 2)


@pytest.mark.parametrize("reg", ["l2", "cosine"])
@pytest.mark.parametrize("task", TASKS[:2])
def test_critic_loss_gradient_matches_finite_differences(task, reg):
    env, a = small_agent(task, seed=1, reg=reg, w1=0.7, w2=1.3)
    obs_moments(a)
    d3pg.td_and_gradient_targets(a.actor.spec, a.critic.spec, a.nets, a.settings, a.buf,
                                 a.work.batch, a.work.ret)
    # As in an update, between the targets and the loss.
    d3pg.popart_rescale(a.nets, a.stats.ret, a.work.batch.Y, a.work.ret)
    loss = d3pg.critic_gradient(a.critic.spec, a.nets, a.settings, a.buf, a.work.batch,
                                a.work.ret)
    phi = a.nets.phi.copy()
    assert loss == pytest.approx(critic_loss(a, phi), rel=1e-10)
    fd = central_difference(lambda p: critic_loss(a, p), phi)
    assert relative_error(a.work.batch.dphi, fd) < 1e-6


@pytest.mark.parametrize("task", TASKS[:2])
def test_actor_gradient_matches_finite_differences(task):
    env, a = small_agent(task, seed=2)
    obs_moments(a)
    d3pg.critic_gradient(a.critic.spec, a.nets, a.settings, a.buf, a.work.batch, a.work.ret)
    d3pg.actor_gradient(a.actor.spec, a.critic.spec, a.nets, a.work.batch)
    X = normalized(a, a.buf.s[a.work.batch.idx])

    def objective(theta):
        actions = a.actor.forward(theta, X)
        return -np.mean(a.critic.forward(a.nets.phi, np.hstack([X, actions]))[:, 0])

    fd = central_difference(objective, a.nets.theta.copy())
    assert relative_error(a.work.batch.dtheta, fd) < 1e-6


def test_popart_preserves_the_critics_unnormalized_outputs():
    env, a = small_agent("MassPoint", seed=3)
    X = np.random.default_rng(0).normal(size=(5, env.state_dim + env.action_dim))
    before = [ret_moments(a), a.critic.forward(a.nets.phi, X),
              a.critic.forward(a.nets.phi_targ, X)]
    a.work.batch.Y[:] = np.linspace(-8, 12, a.work.batch.Y.shape[0])
    d3pg.popart_rescale(a.nets, a.stats.ret, a.work.batch.Y, a.work.ret)
    mu, sigma = a.work.ret
    (mu0, s0) = before[0]
    assert (mu, sigma) != (mu0, s0)
    for phi, q_old in ((a.nets.phi, before[1]), (a.nets.phi_targ, before[2])):
        np.testing.assert_allclose(sigma * a.critic.forward(phi, X) + mu, s0 * q_old + mu0,
                                   rtol=1e-12, atol=1e-12)


def test_parameter_noise_spares_layer_norm_parameters_and_adapts():
    env, a = small_agent("MassPoint", seed=4)
    out = np.empty_like(a.nets.theta)
    d3pg.perturb(a.nets.theta, a.nets.noise_mask, 0.5, a.stats.rng, out)
    changed = out != a.nets.theta
    np.testing.assert_array_equal(changed, a.nets.noise_mask != 0)
    sigma0 = a.stats.sigma[0]
    d3pg.adapt_noise(a.actor.spec, a.nets, a.stats, a.settings, a.buf, a.work.batch)
    d = a.stats.distance[0]
    expected = sigma0 / 1.01 if d > 0.2 else sigma0 * 1.01
    assert a.stats.sigma[0] == pytest.approx(expected)


def test_policy_file_acts_as_the_agent_without_observation_normalization():
    from fastd3pg.train import Policy

    env = make("MountainCar")
    cfg = D3PGConfig(hidden=(8, 8), normalize_obs=False, out_init=0.5)
    agent = D3PGAgent(env, cfg, 0, total_steps=10)
    policy = Policy(agent.policy_arrays())
    for s in (np.array([-0.5, 0.01]), np.array([7.0, -9.0])):  # beyond the ±5 clip too
        core.act(agent.actor.spec, agent.nets.theta, agent.stats.obs, agent.settings.obs,
                 agent.work.act, s)
        np.testing.assert_allclose(policy(s), agent.work.act.a, rtol=1e-12, atol=1e-14)
