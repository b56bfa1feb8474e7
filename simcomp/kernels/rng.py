"""Counter-based random numbers for the training rules: splitmix64 hashes and a ziggurat.

Every random number of a rule (a dropout mask, an ogm_ge noise entry) is
a fixed function of the method's key, the step and the position it is
used at, so that it depends neither on threads nor on batching.

``_mix64`` is the splitmix64 finaliser. A *stream* is a 64-bit state h
(a hash of key, step and position); its draws are ``_mix64(h + i * G)``
for counters i = 1, 2, ... (G the golden-ratio constant), which is the
splitmix64 generator seeded with h.

Normal numbers come from the ziggurat of Marsaglia and Tsang (2000, 128
layers), exact for the normal distribution up to the 32-bit resolution of
its draws. The layer index and the 32-bit magnitude come from disjoint
bits of one 64-bit draw (the original's shared bits correlate them).
About 99 % of the draws take the fast path: one hash, a compare and a
multiply, no log, exp or trigonometric call, which is what makes ogm_ge's
noise (one normal number per weight entry per step) cheap.
"""

import math

import numpy as np

from simcomp._jit import jit

_G = 0x9E3779B97F4A7C15
_R = 3.442619855899  # start of the tail
_V = 9.91256303526217e-3  # area of each layer


def _tables():
    """The ziggurat's tables ``kn`` (int64), ``wn``, ``fn`` (float64), 128 layers."""
    m1 = 2147483648.0
    kn = np.zeros(128, np.int64)
    wn = np.zeros(128)
    fn = np.zeros(128)
    dn = tn = _R
    q = _V / math.exp(-0.5 * dn * dn)
    kn[0] = int((dn / q) * m1)
    kn[1] = 0
    wn[0] = q / m1
    wn[127] = dn / m1
    fn[0] = 1.0
    fn[127] = math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int((dn / tn) * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


_KN, _WN, _FN = _tables()


@jit(inline="always")
def _mix64(z):
    """The splitmix64 finaliser (a bijection of uint64 with good avalanche)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@jit()
def _stream(key, t, a, b):
    """The stream state of position (a, b) at step t under ``key`` (four mixes)."""
    h = _mix64(np.uint64(key) ^ np.uint64(_G))
    h = _mix64(h ^ np.uint64(t))
    h = _mix64(h ^ np.uint64(a))
    return _mix64(h ^ np.uint64(b))


@jit(inline="always")
def _draw(h, i):
    """Draw ``i`` (>= 1) of stream h."""
    return _mix64(h + np.uint64(i) * np.uint64(_G))


@jit(inline="always")
def _open_unit(bits):
    """A uniform number in (0, 1) from the top 53 bits (never 0, so its log is finite)."""
    return (np.float64(bits >> np.uint64(11)) + 0.5) * (1.0 / 9007199254740992.0)


@jit()
def _normal_tail(h, bits):
    """The ziggurat's slow path, from the first draw ``bits`` of entry stream h (rare)."""
    i = 1
    while True:
        iz = np.int64(bits & np.uint64(127))
        hz = np.int64(bits >> np.uint64(32)) - 2147483648  # uniform in [-2^31, 2^31)
        if abs(hz) < _KN[iz]:
            return hz * _WN[iz]
        x = hz * _WN[iz]
        if iz == 0:  # the tail beyond R (Marsaglia's method)
            while True:
                x = -math.log(_open_unit(_draw(h, i))) / _R
                y = -math.log(_open_unit(_draw(h, i + 1)))
                i += 2
                if y + y >= x * x:
                    break
            return _R + x if hz > 0 else -_R - x
        u = _open_unit(_draw(h, i))
        i += 1
        if _FN[iz] + u * (_FN[iz - 1] - _FN[iz]) < math.exp(-0.5 * x * x):
            return x
        bits = _draw(h, i)
        i += 1


@jit(inline="always")
def _normal(h, k):
    """Standard normal number k of stream h: draw k + 1 of h, which also seeds the
    further draws of the rare slow path."""
    bits = _draw(h, k + 1)
    iz = np.int64(bits & np.uint64(127))
    hz = np.int64(bits >> np.uint64(32)) - 2147483648
    if abs(hz) < _KN[iz]:
        return hz * _WN[iz]
    return _normal_tail(bits, bits)


@jit()
def _uniform(key, t, a, b):
    """A uniform number in [0, 1) that is a fixed function of (key, t, a, b)."""
    h = _mix64(np.uint64(key) ^ np.uint64(_G))
    h = _mix64(h ^ np.uint64(t))
    h = _mix64(h ^ np.uint64(a))
    h = _mix64(h ^ np.uint64(b))
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit()
def normals(key, t, a, b, n):
    """``n`` standard normal numbers of stream (key, t, a, b), as the rules draw them (tests)."""
    h = _stream(key, t, a, b)
    out = np.empty(n)
    for k in range(n):
        out[k] = _normal(h, k)
    return out
