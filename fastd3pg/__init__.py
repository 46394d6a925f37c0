"""fastd3pg: D3PG, its differentiable simulators and baselines, on NumPy + Numba.

Subpackages: :mod:`fastd3pg.physics` (simulators with Jacobians), :mod:`fastd3pg.nn`
(MLPs with manual and double backprop), :mod:`fastd3pg.control` (learning algorithms);
:mod:`fastd3pg.train` is the entry point.
"""

__version__ = "0.1.0"
