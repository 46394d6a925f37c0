"""Learning algorithms: D3PG (hybrid DDPG), DDPG and the paper's baselines."""
