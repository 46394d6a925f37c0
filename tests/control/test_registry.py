"""The algorithm registry: every registered name resolves to a wired agent, the driver uses the
registry, and the algorithm files depend on the shared core only."""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

import fastd3pg.control
from fastd3pg import control, train
from fastd3pg.physics import make
from fastd3pg.policy import Policy

DRIVER_INTERFACE = ("train", "evaluate", "finite", "state_arrays", "load_state_arrays",
                    "policy_arrays", "timesteps")
CONTROL_DIR = Path(fastd3pg.control.__file__).parent


@pytest.mark.parametrize("algo", list(control.ALGOS))
def test_every_registered_algorithm_resolves_to_a_wired_agent_class(algo):
    cls = control.agent_class(algo)
    assert isinstance(cls, type)
    assert dataclasses.is_dataclass(cls.config_class)
    config = dataclasses.replace(cls.config_class(), hidden=(8,))
    config.validate()
    missing = [name for name in DRIVER_INTERFACE if not hasattr(cls, name)]
    assert not missing, f"{algo}: {cls.__name__} lacks {missing}"
    # A fresh agent answers the interface without training (no long compiles).
    env = make("Pendulum")
    agent = cls(env, config, seed=0, total_steps=100)
    assert agent.timesteps == 0 or algo == "gd"  # gd's normalizer steps are timesteps
    assert agent.finite() in (True, False)
    policy = Policy(agent.policy_arrays())
    assert (policy.state_dim, policy.action_dim) == (env.state_dim, env.action_dim)
    assert np.all(np.abs(policy(env.reset(seed=0)[0])) <= 1.0)


def test_an_unknown_algorithm_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="unknown algo 'nope'") as err:
        control.agent_class("nope")
    assert all(name in str(err.value) for name in control.ALGOS)


def test_the_driver_uses_the_registry():
    assert train.ALGOS is control.ALGOS
    assert train.agent_class is control.agent_class


def imported_modules(path: Path) -> set:
    """The ``fastd3pg`` modules that ``path`` imports (``from x import y`` counts ``x`` and
    ``x.y``, since ``y`` may be a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("fastd3pg")}


def test_algorithm_files_depend_on_the_core_and_not_on_each_other():
    algorithm_modules = {target.split(":")[0] for target in control.ALGOS.values()}
    assert "fastd3pg.control.core" not in algorithm_modules
    for module in sorted(algorithm_modules):
        path = CONTROL_DIR / (module.rsplit(".", 1)[1] + ".py")
        others = (imported_modules(path) & algorithm_modules) - {module}
        assert not others, f"{module} imports {sorted(others)}"
        assert "fastd3pg.control.core" in imported_modules(path), module


def test_nothing_in_control_imports_the_driver():
    for path in sorted(CONTROL_DIR.glob("*.py")):
        assert "fastd3pg.train" not in imported_modules(path), path.name
