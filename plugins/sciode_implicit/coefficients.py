"""Coefficients of the built-in implicit methods, declared as data.

``ThetaMethod``: the one-stage family u1 = u0 + h[(1 - theta) f(t0, u0) + theta f(t1, u1)]
(theta = 1: implicit Euler, theta = 1/2: the trapezoid rule), with how its error is estimated.

``RosenbrockTableau``: a Rosenbrock method in Hairer & Wanner's transformed form
(Solving ODEs II, IV.7, eq. 7.25): with W = I/(gamma h) - J, stage i solves
    W U_i = f(t0 + c_i h, u0 + sum_j a_ij U_j) + sum_j (C_ij / h) U_j + d_i h df/dt,
u1 = u0 + sum_i m_i U_i, error estimate sum_i e_i U_i, and dense output
    u(t0 + s h) = (1 - s) u0 + s (u1 + (1 - s)(K1 + s (K2 + s (K3 + ...)))),   K_r = sum_i H[r][i] U_i.
RODAS4 numbers: Hairer & Wanner, Solving ODEs II (2nd ed., 1996), section VI.4 and the
published code RODAS (coefficient set 1), including its dense-output coefficients;
RODAS4P: Steinebach (1995); RODAS5P: Steinebach (2023).
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ThetaMethod:
    """u1 = u0 + h[(1 - theta) f0 + theta f1], solved for u1 by Newton.

    ``history_error``: estimate the local error h^3/12 u''' from divided differences of f
    over this and the previous step (second-order methods); otherwise (h/2)(f1 - f0),
    the local error of a first-order method. Either is filtered through W^-1
    (Shampine's trick) so stiff components do not inflate it.
    ``hermite``: cubic Hermite dense output from (u0, f0, u1, f1); else linear.
    """

    theta: float
    order: int
    error_order: int
    history_error: bool
    hermite: bool


IMPLICIT_EULER = ThetaMethod(theta=1.0, order=1, error_order=1, history_error=False, hermite=False)
TRAPEZOID = ThetaMethod(theta=0.5, order=2, error_order=2, history_error=True, hermite=True)


@dataclasses.dataclass(frozen=True)
class RosenbrockTableau:
    """A Rosenbrock method: strictly lower-triangular ``a`` and ``C`` (ragged rows), stage times
    ``c``, time-derivative weights ``d``, solution weights ``m``, error weights ``e`` and
    dense-output rows ``H`` (one entry per stage each)."""

    gamma: float
    a: tuple[tuple[float, ...], ...]
    C: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    d: tuple[float, ...]
    m: tuple[float, ...]
    e: tuple[float, ...]
    H: tuple[tuple[float, ...], ...]
    order: int
    error_order: int

    @property
    def stages(self) -> int:
        return len(self.c)

    def check(self) -> None:
        s = self.stages
        rows_ok = all(len(self.a[i]) == i and len(self.C[i]) == i for i in range(s))
        lengths_ok = len(self.d) == len(self.m) == len(self.e) == s and all(len(r) == s for r in self.H)
        if not rows_ok or not lengths_ok:
            raise ValueError("RosenbrockTableau: a and C must have ragged rows 0..s-1; d, m, e and H rows length s")


def _rodas_family(gamma: float, a: tuple, C: tuple, c: tuple, d: tuple, H: tuple, tail: int,
                  order: int) -> RosenbrockTableau:
    """A stiffly accurate RODAS-type method from its ``a`` rows, C rows, inner stage times ``c``,
    time-derivative weights ``d`` and dense-output rows ``H``.

    The last given ``a`` row (stage k) is followed by ``tail`` stages that each start from the
    previous stage's point plus its increment; the solution adds the last increment, which is
    also the error estimate (Hairer & Wanner II, VI.4). Stages k .. s run at t1 and have d = 0.
    """
    last = tuple(a[-1])
    k = len(last)
    tails = tuple(last + (1.0,) * j for j in range(1, tail + 1))
    s = k + 1 + tail
    return RosenbrockTableau(
        gamma=gamma, a=((),) + tuple(tuple(r) for r in a) + tails, C=((),) + tuple(tuple(r) for r in C),
        c=(0.0,) + tuple(c) + (1.0,) * (tail + 1), d=tuple(d) + (0.0,) * (s - len(d)), m=last + (1.0,) * (tail + 1),
        e=(0.0,) * (s - 1) + (1.0,), H=tuple(tuple(r) + (0.0,) * (s - len(r)) for r in H), order=order,
        error_order=order - 1)


RODAS4 = _rodas_family(
    0.25,
    a=((1.544,), (0.9466785280815826, 0.2557011698983284),
       (3.314825187068521, 2.896124015972201, 0.9986419139977817),
       (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)),
    C=((-5.6688,), (-2.430093356833875, -0.2063599157091915),
       (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
       (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
       (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054)),
    c=(0.386, 0.21, 0.63), d=(0.25, -0.1043, 0.1035, -0.0362),
    H=((10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662),
       (-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872)),
    tail=1, order=4,
)


# Steinebach's RODAS4P (1995): a RODAS4-type method with extra order conditions for the
# Prothero-Robinson problem and linear parabolic problems, so it avoids most of RODAS4's order
# reduction there (measured: order 3 on Prothero-Robinson with lambda = 1e6, where RODAS4 drops to 1).
# Numbers as published (Steinebach, Preprint 1741, TH Darmstadt, 1995).
RODAS4P = _rodas_family(
    0.25,
    a=((3.0,), (1.831036793486759, 0.4955183967433795),
       (2.304376582692669, -0.05249275245743001, -1.176798761832782),
       (-7.170454962423024, -4.741636671481785, -16.31002631330971, -1.062004044111401)),
    C=((-12.0,), (-8.791795173947035, -2.207865586973518),
       (10.81793056857153, 6.780270611428266, 19.53485944642410),
       (34.19095006749676, 15.49671153725963, 54.74760875964130, 14.16005392148534),
       (34.62605830930532, 15.30084976114473, 56.99955578662667, 18.40807009793095, -5.714285714285717)),
    c=(0.75, 0.21, 0.63), d=(0.25, -0.5, -0.023504, -0.0362),
    H=((25.09876703708589, 11.62013104361867, 28.49148307714626, -5.664021568594133, 0.0),
       (1.638054557396973, -0.7373619806678748, 8.477918219238990, 15.99253148779520, -1.882352941176471)),
    tail=1, order=4,
)


# Steinebach's RODAS5P (2023): an eight-stage order-5(4) RODAS method with extra conditions for
# Prothero-Robinson (stiff order 3 there, as RODAS4P: see tests/plugins/sciode_implicit/test_rodas5p.py)
# and index-1 DAEs, and an order-4 dense output (three H rows). Numbers as published in
# Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and numerical
# benchmarks within the Julia Differential Equations package", BIT Numer. Math. 63 (2023) 27.
RODAS5P = _rodas_family(
    0.21193756319429014,
    a=((3.0,), (2.849394379747939, 0.45842242204463923),
       (-6.954028509809101, 2.489845061869568, -10.358996098473584),
       (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
       (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256, 0.030198172008377946)),
    C=((-14.155112264123755,), (-17.97296035885952, -2.859693295451294),
       (147.12150275711716, -1.41221402718213, 71.68940251302358),
       (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
       (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
       (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
        -28.087943162872662),
       (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
        -54.66780262877968, -9.48861652309627)),
    c=(0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664),
    d=(0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734, 2.325825639765069),
    H=((25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204, 0.524948541321073,
        1.1241088310450404, 0.4272876194431874, -0.17202221070155493),
       (-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796, 20.176138334709044,
        15.98066361424651, -6.789040303419874, -6.710236069923372),
       (11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643, -52.072871366152654,
        -59.78993625266729, -0.15582684282751913, 4.883087185713722)),
    tail=2, order=5,
)
