"""Element-wise functions written so that LLVM vectorizes the loops that call them: the
hidden activations tanh and elu.

A call to the C library's ``tanh`` or ``expm1`` is opaque to LLVM's loop vectorizer, so a loop
of them runs one number at a time (Numba vectorizes such calls only with Intel's SVML, which
PyPI's llvmlite does not ship). These functions are plain arithmetic without branches (where
there are two formulas, both are computed and one is selected), so a loop over a row runs four
numbers per instruction with AVX2.

``exp(t)``, ``t <= 0`` (:func:`_exp_parts`): ``t = k ln 2 + r`` with ``k`` the nearest integer to
``t / ln 2``, ``ln 2`` split in two parts (Cody and Waite) so that ``r`` is exact to rounding,
``e^r - 1`` by its Taylor series to ``r¹³`` on ``|r| <= ln 2 / 2``, and ``2^k`` built from its
bits. Keeping ``e^r - 1`` apart from the 1 is what makes ``expm1`` accurate near 0.

``tanh``: for ``|x| < 0.625``, ``x + x³ P(x²)/Q(x²)``, the rational approximation of the
Cephes library (degree 2 over 3); beyond, ``1 - 2e/(1 + e)`` with ``e = exp(-2|x|)``, and the
sign restored. The two branches' divisions are one: the selected numerator over the selected
denominator. ``-2|x|`` is clamped at -40, past which ``tanh`` is 1 to double precision (from
``|x| > 19.06``). ``elu``: ``x`` for ``x > 0``, else ``e^x - 1 = 2^k (e^r - 1) + (2^k - 1)``,
with ``x`` clamped at -60, where ``e^x - 1`` is -1 to double precision.

Accuracy: within 2 ulp of the exact value (at most 1.46 ulp for tanh at 6·10⁷ random points,
1.17 for ``e^x - 1`` at 3·10⁷; the C library's are within 1); tanh is odd to the bit; signed
zeros, infinities and NaN come out as from NumPy. ``tests/nn/test_vmath.py`` checks this against
extended precision. The arithmetic uses fused multiply-add (``contract``), never the
NaN/inf-assuming flags.
"""

import numpy as np

from fastd3pg._jit import jit

# Cephes tanh, |x| < 0.625: tanh x = x + x³ P(x²) / Q(x²), Q monic.
_TP0, _TP1, _TP2 = -9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3
_TQ0, _TQ1, _TQ2 = 1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3
# 1/n!, the Taylor coefficients of e^r - 1.
_F3, _F4, _F5, _F6, _F7, _F8 = 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320
_F9, _F10, _F11, _F12, _F13 = 1 / 362880, 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93145751953125e-1, 1.42860682030941723212e-6  # ln 2 = HI + LO, HI exact in k·HI
# t / ln 2 + 1.5·2^52 is rounded to an integer k, and its bits are those of the shift plus k.
_ROUND_SHIFT = 6755399441055744.0
_ROUND_SHIFT_BITS = int(np.float64(_ROUND_SHIFT).view(np.int64))
_TANH_SMALL = 0.625  # where Cephes switches from the rational form to exp
_TANH_T_MIN = -40.0  # exp(-40) < 2^-57: 1 - 2e/(1 + e) rounds to 1
_EXPM1_T_MIN = -60.0  # exp(-60) < 2^-86: e^x - 1 rounds to -1


@jit(fastmath={"contract"})
def _exp_parts(t):
    """``exp(t) = s (1 + m)`` for ``-700 <= t <= 0``: ``s = 2^k`` and ``m = e^r - 1`` at the
    reduced argument ``r = t - k ln 2``, ``|r| <= ln 2 / 2``, by its Taylor series to ``r¹³``
    (truncation below 5e-18)."""
    kf = t * _LOG2E + _ROUND_SHIFT
    k = kf - _ROUND_SHIFT
    r = t - k * _LN2_HI
    r = r - k * _LN2_LO
    c = _F13
    c = c * r + _F12
    c = c * r + _F11
    c = c * r + _F10
    c = c * r + _F9
    c = c * r + _F8
    c = c * r + _F7
    c = c * r + _F6
    c = c * r + _F5
    c = c * r + _F4
    c = c * r + _F3
    c = c * r + 0.5
    m = (r * r) * c + r
    s = np.int64((np.float64(kf).view(np.int64) - _ROUND_SHIFT_BITS + 1023) << 52).view(np.float64)
    return s, m


@jit(fastmath={"contract"})
def tanh(x):
    """``tanh(x)`` of a float64, in branch-free arithmetic (see the module docstring)."""
    ax = abs(x)
    z = x * x
    p = (_TP0 * z + _TP1) * z + _TP2
    q = ((z + _TQ0) * z + _TQ1) * z + _TQ2
    t = -2.0 * ax
    t = t if not (t < _TANH_T_MIN) else _TANH_T_MIN  # NaN stays NaN
    s, m = _exp_parts(t)
    e = s * m + s
    small = ax < _TANH_SMALL
    ratio = (p if small else e + e) / (q if small else 1.0 + e)
    near0 = x + x * (z * ratio)
    near0 = near0 if x != 0.0 else x  # keeps the sign of -0
    far = 1.0 - ratio
    far = -far if x < 0.0 else far
    return near0 if small else far


@jit(fastmath={"contract"})
def elu(x):
    """``elu(x)`` (α = 1) of a float64: ``x`` if ``x > 0``, else ``e^x - 1``, in branch-free
    arithmetic (see the module docstring)."""
    t = x if not (x > 0.0) else 0.0
    t = t if not (t < _EXPM1_T_MIN) else _EXPM1_T_MIN
    s, m = _exp_parts(t)
    expm1 = s * m + (s - 1.0)
    expm1 = expm1 if x != 0.0 else x  # keeps the sign of -0
    return x if x > 0.0 else expm1
