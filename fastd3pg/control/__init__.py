"""Learning algorithms: D3PG (hybrid DDPG), DDPG and the paper's baselines.

The registry of algorithms: :data:`ALGOS` maps each ``--algo`` name to its agent class
(``"module:Class"``, imported on first use), and :func:`agent_class` resolves a name. Each agent
class carries its config dataclass (``config_class``) and the training driver's interface
(``train``, ``evaluate``, ``finite``, ``state_arrays``, ``load_state_arrays``,
``policy_arrays``, ``timesteps``). An algorithm is one file in this package, built on
:mod:`fastd3pg.control.core`, plus one line here.
"""

import importlib

ALGOS = {
    "ddpg": "fastd3pg.control.d3pg:DDPGAgent",
    "d3pg": "fastd3pg.control.d3pg:D3PGAgent",
    "sac": "fastd3pg.control.sac:SACAgent",
    "d3pg-sac": "fastd3pg.control.sac:HybridSACAgent",
    "gd": "fastd3pg.control.gd:GDAgent",
    "mpc": "fastd3pg.control.mpc:MPCAgent",
}


def agent_class(algo: str):
    """The agent class registered as ``algo``; ``ValueError`` listing the valid names else."""
    if not isinstance(algo, str) or algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    module, name = ALGOS[algo].split(":")
    return getattr(importlib.import_module(module), name)
