r"""Every tolerance gradsuite uses, in one place, with the reason beside each row.

A comparison passes element-wise when ``|actual - expected| <= atol + rtol * |expected|``
(the ``torch.testing.assert_close`` rule). Both numbers are always given together: ``rtol``
alone would let ``atol=0`` surprise you, and vice versa.

How the numbers are derived. ``eps`` is the machine epsilon of the dtype under test
(float64: 2.2e-16, float32: 1.2e-7). The reference is evaluated in float64 on the *same*
inputs torch receives (rounded to the dtype under test, then widened), so input rounding is not
counted: what remains is the rounding of torch's own arithmetic. An elementwise function built
from a few correctly rounded operations is good to a few ulp; a reduction over ``n`` terms with
pairwise or blocked summation typically to ``O(sqrt(n))`` ulp of the sum of magnitudes. With the
value ranges the strategies draw (magnitudes around 1, reductions over at most a few hundred
terms) the rows below leave a margin of roughly 10x over the errors observed, and they stay far
below the size of any real bug: a wrong branch, sign or factor shows as an error of order 1.

Tolerances are never scaled with array size. A record whose maths is worse conditioned widens
them on the record itself (``OpSpec.tol``), merged here by ``max`` and visible in the catalogue.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

import torch


class Tolerance(NamedTuple):
    """Relative and absolute tolerance, always as a pair."""

    rtol: float
    atol: float


class Kind(str, Enum):
    """What is being compared; each kind has its own table."""

    FORWARD = "forward"  # an op's output
    GRADIENT = "gradient"  # autograd's VJP against the reference VJP
    OPTIMIZER = "optimizer"  # parameters and state after one optimizer step
    TRAINING = "training"  # parameters along a whole training trajectory
    SCHEDULE = "schedule"  # a learning-rate scheduler's lr sequence (Python floats)
    SCALER = "scaler"  # torch.amp.GradScaler's scale (a float32 tensor whatever the params' dtype)


_EPS64 = float(torch.finfo(torch.float64).eps)  # 2.2e-16
_EPS32 = float(torch.finfo(torch.float32).eps)  # 1.2e-7
_EPS16 = float(torch.finfo(torch.float16).eps)  # 9.8e-4
_EPSBF16 = float(torch.finfo(torch.bfloat16).eps)  # 7.8e-3

# Half precision (float16, bfloat16; tests/test_precision.py, records with ``low_precision``).
# torch's CPU kernels evaluate half-precision elementwise ops in float32 (the "opmath" type)
# and round the result once: 1/2 ulp, i.e. eps/2 relative, the float32 work adding only
# ~eps32 (1e-4 of a float16 ulp). A functional that chains a few such kernels (glu's
# a * sigmoid(b), tanhshrink's x - tanh(x)) rounds each intermediate: 1/2 ulp per step of
# magnitude-1 intermediates. Hence, as a pair, for the forward:
#   rtol = 4 eps  (up to 8 roundings of the output's size: a short chain of kernels)
#   atol = 2 eps  (a rounded intermediate of magnitude <= 4, e.g. tanh(x) in tanhshrink,
#                 survives a cancelling subtraction as an absolute error of <= 2 eps)
# and for the gradient, whose backward kernels often use the *saved rounded output* y
# (sigmoid: g y (1 - y), tanh: g (1 - y^2)): rounding y by eps/2 moves f'(y) by
# |d f'/dy| eps/2 <= eps (|d f'/dy| <= 2 for tanh), times |g| <= 4 (a standard normal
# cotangent, itself rounded, over <= 4096 elements), an absolute error up to 4 eps:
#   rtol = 4 eps, atol = 8 eps  (2x margin on 4 eps).
# Nothing is fitted: a wrong branch, sign or factor is off by O(1), >= 30x these in bfloat16.
#
# Sums of signed terms (the conditioning term). The rows above bound errors relative to the
# result; a sum's rounding error is relative to the sum of the magnitudes of its terms,
# M = sum |terms| (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 4.2:
# |fl(sum) - sum| <= gamma_k * sum |terms| for k roundings on the way). When the terms cancel,
# M / |sum| is the sum's condition number: nll_loss's float16 sum over 20 values cancelling to
# -0.017 was off by 0.0023, 0.14 relative to the result but 1.4e-4 of M = 16, well inside
# float16 accuracy. Records whose outputs or gradients are signed sums declare how to compute
# M (``OpSpec.terms``, suite/conditioning.py), and a half-precision comparison allows, per
# element, SUMMATION[dtype] * M on top of the row. torch's CPU kernels accumulate half-precision
# sums in float32 (eps32 * M: negligible here) and round a few partial results to the half type
# on the way (conv's float16 weight gradient over blocks of the batch, bilinear's two
# contractions, a bias added after the product was rounded): each such rounding costs at most
# eps/2 * M. Four of them:
#   SUMMATION = 2 eps  (per unit of M)
# Observed (torch 2.13.0 CPU, 60 to 200 random draws per record and dtype of linear, conv1d,
# conv2d and bilinear, error beyond the result's own eps/2 rounding): linear 0 (one rounding),
# bilinear 0.45 eps M forward, conv1d 0.88 eps M float16 gradient; so 2 eps leaves 2.3x. The
# ladder then passed 300 draws per record and dtype with it. A wrong term (a bias added
# twice, a transposed weight) is off by the size of that term, O(M / n) for n terms: 1e-2..1e-1
# relative, 10x to 100x above 2 eps M for the drawn sizes in float16, and the harness shows a
# planted bias error failing (tests/test_harness.py). The same bound holds in float32 and
# float64, whose kernels also round blocked partial sums: their rows' atol covers 2 eps M only
# while M stays small, and a float32 conv2d weight gradient over inputs of scale ~17 (M in the
# thousands) was 2e-5 off against the row's 1e-5 with torch right (the reference agreeing with
# finite differences): so every dtype gets 2 eps per unit of M, the float32 row's 1e-5 being
# ~40 eps32 a sum with M <= 40 never needs it.
SUMMATION = {torch.float16: 2 * _EPS16, torch.bfloat16: 2 * _EPSBF16,
             torch.float32: 2 * _EPS32, torch.float64: 2 * _EPS64}
_HALF_FORWARD = {d: Tolerance(rtol=4 * e, atol=2 * e)
                 for d, e in ((torch.float16, _EPS16), (torch.bfloat16, _EPSBF16))}
_HALF_GRADIENT = {d: Tolerance(rtol=4 * e, atol=8 * e)
                  for d, e in ((torch.float16, _EPS16), (torch.bfloat16, _EPSBF16))}

TABLES: dict[Kind, dict[torch.dtype, Tolerance]] = {
    Kind.FORWARD: {
        # 2**12 ulp: libm and summation-order differences between torch and NumPy stay below
        # ~100 ulp on the drawn ranges; a wrong formula is off by >1e-3.
        torch.float64: Tolerance(rtol=2**12 * _EPS64, atol=2**12 * _EPS64),
        # torch.testing's float32 defaults (rtol ~11 ulp, atol 1e-5): a few roundings of
        # float32 arithmetic on values of magnitude ~1.
        torch.float32: Tolerance(rtol=1.3e-6, atol=1e-5),
        **_HALF_FORWARD,  # derived above, beside _EPS16
    },
    Kind.GRADIENT: {
        # A VJP chains the forward with a few more operations (products, a reduction for
        # softmax-like ops and for weight gradients): 2**16 ulp.
        torch.float64: Tolerance(rtol=2**16 * _EPS64, atol=2**16 * _EPS64),
        # ~84 ulp relative, 1e-5 absolute: weight gradients are batch reductions of products.
        torch.float32: Tolerance(rtol=1e-5, atol=1e-5),
        **_HALF_GRADIENT,  # derived above, beside _EPS16
    },
    Kind.OPTIMIZER: {
        # One update is a handful of elementwise operations (sqrt, division, lerp), computed
        # from the same starting state on both sides: forward-sized tolerances.
        torch.float64: Tolerance(rtol=2**12 * _EPS64, atol=2**12 * _EPS64),
        # Adam's m / (sqrt(v) + eps) can amplify the rounding of v when sqrt(v) ~ eps; 2e-6
        # relative (~17 ulp) on top of the float32 defaults covers that.
        torch.float32: Tolerance(rtol=2e-6, atol=1e-5),
    },
    Kind.SCHEDULE: {
        # Learning rates are Python floats whatever the parameters' dtype. torch's chainable
        # step() multiplies the previous lr by a ratio each epoch, so <= 60 epochs accumulate
        # ~60 roundings (~1.3e-14 relative) against the reference's closed form; cosine
        # ratios (1 + cos a) / (1 + cos b) near a = pi lose up to eps / (1 + cos b) ~ 1e-12
        # relative for T_max <= 30. 1e-10 relative leaves 100x; atol 1e-15 covers lrs at 0.
        torch.float64: Tolerance(rtol=1e-10, atol=1e-15),
        torch.float32: Tolerance(rtol=1e-10, atol=1e-15),
    },
    Kind.SCALER: {
        # The scale S is a float32 tensor for parameters of any dtype; each update multiplies
        # it by a float64 factor and rounds once to float32, which the reference reproduces
        # (references.training.grad_scaler_update), so today S agrees exactly (observed: 0
        # ulp on torch 2.13.0). The row allows one ulp per update, for a torch that rounds the
        # factor to float32 first, over at most 16 updates (the longest run the tests draw):
        # 16 eps32 = 1.9e-6 relative. A wrong state transition is off by a whole factor
        # (>= 1.1x: growth and backoff factors are drawn from [1.1, 4] and [0.25, 0.9]).
        torch.float64: Tolerance(rtol=16 * _EPS32, atol=0.0),
        torch.float32: Tolerance(rtol=16 * _EPS32, atol=0.0),
    },
    Kind.TRAINING: {
        # A 1000-step trajectory accumulates the rounding of every step; the dynamics of the
        # training examples are contracting, so errors stay bounded rather than growing.
        # Compiled loops (torch.compile of the model and of optimizer.step; suite/trainloops.py)
        # use these rows unchanged, as compiled op checks use the eager rows with SUMMATION
        # (see COMPILED below).
        torch.float64: Tolerance(rtol=1e-9, atol=1e-9),
        torch.float32: Tolerance(rtol=1e-4, atol=1e-4),
    },
}

# Compiled code (torch.compile, ``--backend``; suite/compiled.py). What a compiler may
# legitimately change in these checks, and why none of it needs a wider row:
# * the order of a reduction's terms (inductor splits, vectorises and re-associates sums: the
#   MSE and cross-entropy means over N <= 200 samples, the batch sums of the weight and bias
#   gradients, a matmul's inner products): Higham's bound gamma_{n-1} sum |terms| holds for ANY
#   order of summation ("Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 4.2,
#   eq. (4.4)), so every row above (and SUMMATION) derived from it holds for compiled code as
#   it does for eager's order;
# * fused roundings: a fused kernel keeps intermediates in registers (or contracts a * b + c to
#   one fma), which removes roundings of at most u |intermediate| each: the result moves by no
#   more than the eager rounding the row already covers;
# * its own vectorised elementwise functions (inductor's CPU code uses Sleef's 1-ulp tanh, exp
#   and log where eager uses its own or libm's): a few ulp, the same order as eager's libm.
# A compiled run on the CPU accumulates float32 in float32 and float64 in float64, as eager
# does. So the compiled op checks use the eager FORWARD/GRADIENT rows with SUMMATION, the
# compiled optimizer steps the OPTIMIZER row with its measured conditioning, and the compiled
# training loops the TRAINING rows: any per-step change above stays a few ulp of the
# magnitudes involved, far inside the trajectory rows (float32 1e-4 is ~840 ulp at 1, float64
# 1e-9 ~4.5e6 ulp) while the contracting dynamics keep it from growing. Measured 2026-12-01
# (torch 2.13.0 CPU, aot_eager, quick profile, --drift-json; largest error / row over the
# draws): linear regression float32 0.0154 compiled, 0.0161 eager; float64 1.1e-7 compiled,
# 1.6e-7 eager; the MLP with its model compiled (Adam eager) 4.8e-7, eager 8.2e-6. Compiled
# and eager use the same fraction of the rows; nothing was widened.
# A compiled step computing in a lower precision than its dtype is not a legitimate change: it
# is a finding (KNOWN_DIFFERENCES.md, "Compiled optimizer steps are not float64-exact").

# AMP: gradients of a model run under torch.autocast in float16 or bfloat16
# (tests/test_identities.py, the gradscaler checks). With a power-of-two scale S the scaled
# backward differs from the unscaled one only by exponents, so the two round identically, except
# where the unscaled run's half-precision gradient falls below the normal range (float16 below
# 2**-14: subnormals are spaced 2**-24 apart, and 2**-25 is lost per rounding, 0 for
# bfloat16, whose range is float32's). Scaling exists to avoid exactly that loss. The unscaled
# weight gradient sum_n dz_n x_n then differs by at most AUTOCAST_SUBNORMAL * sum_n |x_n| (an
# allowance per element, twice 2**-25), plus one rounding of the half-precision result each
# side: rtol = eps of the half type (both results are rounded once, 1/2 ulp each).
AUTOCAST_SUBNORMAL = {torch.float16: 2.0**-24, torch.bfloat16: 0.0}
# Against the float64 reference on the half-rounded parameters and inputs: one linear layer
# z = x W^T + b computed in half (float32 accumulation, one rounding: u |z| with u = eps/2),
# an MSE loss in float32 (autocast runs it in float32) whose gradient dz = 2 (z - y) / n
# carries z's error, dz rounded to half on the way back (u |dz|), and dW = sum_n dz_n x_n
# rounded once (u |dW|). The first-order bound is
#   |dW_torch - dW| <= u |dW| + u sum_n (|dz_n| + (2/n) |z_n|) |x_n|
# (float32 terms, ~eps32 M, are 1e-4 of it and left out). The check allows twice that:
# rtol = eps, and AUTOCAST_TERMS * sum_n (|dz_n| + (2/n) |z_n|) |x_n| per element with
# AUTOCAST_TERMS = eps (bias: the same with x_n = 1). A wrong unscale (a factor S or 1/S) is off
# by 2**4 or more, a dropped bias or sign by O(|dW|).
AUTOCAST_RTOL = {torch.float16: _EPS16, torch.bfloat16: _EPSBF16}
AUTOCAST_TERMS = {torch.float16: _EPS16, torch.bfloat16: _EPSBF16}

# Finite differences (reference VJP against the reference forward, float64, torch-free).
# A central difference with step h has truncation error O(h^2 |f'''|) and rounding error
# O(eps |f| / h); with h = 1e-6 on inputs of magnitude ~1 both are below 1e-9 relative to the
# scale of the inner product, so 1e-6 leaves a wide margin and still flags a VJP that is off by
# a factor (relative error ~1) or by a sign (~2).
FD_STEP = 1e-6
FD_RTOL = 1e-6
# The rounding floor of a central difference: each of f(x + h v), f(x - h v) carries an error
# of a few ulp of |f|, so the quotient is uncertain by ~eps |f| / h, which no step can beat
# where f is large and its derivative tiny (tanh at 9.4: f ~ 1, f' ~ 2.5e-8). The check
# allows FD_ROUNDING_ULPS * eps * sum|g| (|f(x + h v)| + |f(x - h v)|) / (2 h) on top of the
# relative term; on inputs of magnitude ~1 that floor is ~50x below FD_RTOL's share.
FD_ROUNDING_ULPS = 64
# Where the result cancels, |f| understates that rounding: tanhshrink's x - tanh(x) is formed
# from two terms of size |x| and is itself ~x^3 / 3, so each evaluation is off by ~eps |x|, not
# eps |f|. A record whose forward is such a difference declares M = sum |terms| of it
# (``OpSpec.terms``, suite/conditioning.py), and the floor uses M(x +- h v) in place of |f|.
# A recurrent record's gates give it without declaring ``terms`` (RecurrentGates.forward, a
# running error bound through the reference's step, carried along the sequence and up the
# layers): the GRU's h' = (1 - z) n + z h is ~1e-8 where z saturates while each evaluation is
# off by ~eps |h - n| through z's rounding (a correct gru_cell reference failed by 0.9 % at
# h = 1e-6 under the thorough profile, a one-step gru layer by 1.6x its |f| floor under seed
# 2143), so its floor uses that M.
#
# The truncation error of a central difference, D(h) - f' v = c h^2 + O(h^4) with
# c = f'''(x)[v, v, v] / 6, is relative to f''' v^3, not to the result: where f' vanishes and
# f''' does not (tanhshrink near 0: f' = tanh^2 x ~ 6e-8 at x = 2.4e-4, f''' ~ 2) it is the
# whole error (1.93e-11 measured at x = 2.42e-4, v = 3.87, h = 1e-6, against the FD_RTOL share
# 2.3e-13 and the float64 GRADIENT row's 1.46e-11: test_jvp_matches_reference[cpu-tanhshrink]
# failed on a correct torch). Richardson's estimate measures it on the case itself:
# D(2h) - D(h) = 3 c h^2 + O(h^4), so c h^2 = (D(2h) - D(h)) / 3; a comparison that would fail
# allows FD_TRUNCATION_SAFETY times that estimate in addition. The O(h^4) remainder and the
# estimate's own rounding (~eps |f| / h, already the floor's size) are covered by the factor 2.
# A wrong VJP (a factor, a sign, a missing term) is off by O(|f'|), which the estimate does not
# contain: it depends on the forward alone (tests/test_harness.py plants one where f' ~ 0).
FD_TRUNCATION_SAFETY = 2.0

# Optimizer steps (suite/optimcheck.py): the conditioning of the update itself. Some updates
# amplify rounding without bound: centered RMSprop divides by sqrt(v - m^2), and when the
# gradient is nearly constant v ~ m^2, so float32 rounding of v and m^2 is magnified by
# v / (v - m^2) (3.7e-6 relative seen in a momentum buffer against the OPTIMIZER row's 2e-6).
# No fixed row can cover that, so each step also runs the reference on its inputs perturbed by
# OPTIMIZER_SHAKE_ULPS ulp of the dtype under test (a backward-error reading of torch's
# rounding: its result is the exact update of inputs that close) and adds OPTIMIZER_SENSITIVITY
# times the change this causes in each compared entry to that entry's atol. One random shake
# sees one draw of rounding-sized noise; torch's rounding is another: 16x covers the spread of
# such draws. Well-conditioned updates change by ~1 ulp, far below the row's atol; a wrong
# update rule is still off by O(1) (tests/test_harness.py plants one).
OPTIMIZER_SHAKE_ULPS = 4
OPTIMIZER_SENSITIVITY = 16.0

# Muon (torch.optim.Muon) orthogonalises its update by a Newton-Schulz iteration in bfloat16,
# whatever the parameters' dtype; the reference rounds every intermediate to bfloat16 as torch
# does (references/optim_muon.py), which reproduces torch's bits exactly unless one rounding
# falls within torch's float32 accumulation error of a bfloat16 tie (the reference counts
# those, from the rigorous bound (k + 2) 2**-24 sum |terms| of a k-term float32 sum). Then
# either neighbour is right, and the iteration carries the 1-ulp difference on: measured over
# 6000 random matrices (1 x 1 to 256 x 1, scales 1e-3 to 10 and spread over e^+-5, zeros; four
# coefficient sets, 1 to 8 steps; torch 2.13.0 CPU), torch's O differed from the reference's in
# 34 draws, every one with such a tie counted, by at most 3.4 units of 2**-8 max|O|. A step
# with a tie allows MUON_TIE_UNITS units of 2**-8 max|O| times the adjusted lr on the
# parameter (4.7x the worst seen); a step without one is compared at the OPTIMIZER row.
MUON_TIE_UNITS = 16.0

# L-BFGS steps (suite/closurecheck.py). One step is up to max_iter (<= 8) iterations plus
# line-search trials, each a few dot products feeding the next: a short trajectory, so the
# float64 TRAINING row (1e-9, ~4.5e6 ulp) rather than the one-update row. That covers
# well-conditioned steps only: near the optimum y = g_{k+1} - g_k and g^T d cancel (1 / y^T s
# reached 1.5e8 in a probe, relative errors 1e-7), and a diverging fixed-step run on Rosenbrock
# amplifies rounding chaotically. So each step's tolerance adds the measured sensitivity of the
# reference itself: it is run again with every objective value and gradient perturbed by up to
# LBFGS_PERTURB_ULPS ulp (what torch's different summation order does; the parameters it is
# evaluated at, and the state the step starts from, likewise), and LBFGS_SENSITIVITY times the
# greatest change of each compared entry is added to its atol. 64x covers the spread of
# rounding draws (the greatest change over a handful of entries varies by a factor of a few
# between draws) with a wide margin, and is still ~1e-12 or less on well-conditioned steps, far
# below any wrong formula (relative errors ~1e-2 or more).
LBFGS_PERTURB_ULPS = 8
LBFGS_SENSITIVITY = 64.0

# Values drawn closer than this to a point where the op is not differentiable (a kink) are
# pushed out to this distance (suite/strategies.py Domain, suite/inputs/losses.py), so a
# central difference of step FD_STEP (<= ~4e-6 along a direction) never straddles it; the
# exact points themselves are checked on purpose (suite/layouts.py).
KINK_MARGIN = 1e-3

# --- The hard tier (suite/hard.py draws the inputs, suite/hardcheck.py compares) ------------
#
# Hard inputs (offsets >> spread, constant rows, magnitudes near overflow and underflow,
# subnormals, signed zeros, sizes straddling the vector width, reductions over 10^4-10^5 terms)
# are judged in every dtype by their own conditioning, element by element:
#
#   |torch - ref| <= rtol |ref| + SUMMATION[dtype] M + (n + HARD_EXTRA_ROUNDINGS) u_acc M_acc
#                    + hard_floor(dtype, n, B)
#
# * rtol: the record's relative row for the kind and dtype: a few roundings of the result. The
#   rows' fixed absolute parts (float32's 1e-5) are dropped: they hide a 100 % error on a
#   result of 1e-6, and a hard case's results are often that small. A record with a visible
#   atol widening and no declared terms keeps that widening (derived on its record).
# * M_acc, n: a result that is a sum of n signed terms, formed in torch's accumulation type
#   (float32 for half-precision inputs, the dtype itself otherwise; u_acc is its unit roundoff
#   eps / 2), is within gamma_{n-1} sum |terms| of the exact sum for ANY order of summation
#   (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd ed., sec. 4.2, eq. (4.4));
#   the terms themselves carry a few roundings (products, a division by the spread, an exp or
#   log within a few ulp, the final rounding): HARD_EXTRA_ROUNDINGS = 8 of them. Not the
#   probabilistic sqrt(n) bound: the rounding errors of constant and nearly constant data are
#   correlated, and torch's batch_norm mean of 10^4 copies of -3.7 in float32 was off by 840
#   ulp (~n / 12; measured 2026-12-01). M_acc is the record's sum |terms| (``OpSpec.terms``,
#   suite/conditioning.py: the centring x - mean of a normalisation cancels |x| and |mean|, a
#   matmul's products, a reduced loss's pointwise losses, a formula such as x - tanh(x)); where
#   a record declares none, the result is one rounded product and rtol alone applies. Where
#   the terms cancel exactly (a constant row centred by a correct mean), M_acc is 0 and the
#   exact answer is required.
# * SUMMATION[dtype] M: half precision only, as on the ladder (above).
# * Copies (``conditioning.Copies``: padding, shuffles, fold and unfold, flatten and unflatten,
#   unpooling) take none of the above: a result that is one input element must be that element
#   exactly (no rtol, no floor: a flushed subnormal or a copy one ulp off fails); one that sums
#   k > 1 copies (fold's overlaps, a reflected or replicated element's gradient) is allowed
#   (k - 1) u sum|copies| (gamma_(k-1), any order, in the dtype's own unit u: torch's CPU
#   backward kernels add into a gradient of the input's type) and one rounding to the dtype; a
#   constant option placed in the output (a pad value) one rounding of it. Counts k come from
#   the reference (f(1) - f(0), the VJP of ones), element by element (suite/hardcheck.py,
#   ``_exact_copies``; tests/test_hard.py plants a flush to zero and a one-ulp copy).
# * hard_floor: below the accumulation type's smallest normal number a result is subnormal or
#   flushed to zero, and an intermediate that underflows (sigmoid(-89) in float32 is
#   1 / (1 + exp(89)) = 1 / inf = 0 where the exact value is 2.2e-39) loses up to that number,
#   which later factors of the case's values may scale (silu's x sigmoid(x): 89 x 2.2e-39) and
#   each of n terms of a sum may add: HARD_FLOOR_ULPS tiny_acc n (1 + B)^2, B the largest
#   magnitude among the case's values and cotangent capped at 1024 (suite/conditioning.py,
#   ``magnitude``: beyond |x| ~ 745 every exp-type intermediate is 0 in float64 too), plus
#   HARD_FLOOR_ULPS (1 + B) smallest subnormals of the result's own dtype: its last rounding,
#   and intermediates a half-precision kernel stores in the half type (glu's float16 backward
#   keeps sigmoid(-19.2) = 4.6e-9 as 0, then multiplies by a = 8188). In float32 that judges
#   every result above ~1e-33 relatively; in float16 above ~5e-7 (1 + B) when B is large.
# Nothing is fitted to torch: a one-pass variance E[x^2] - E[x]^2 is off by ~eps (mean /
# spread)^2 where the allowance is ~n eps (mean / spread), a float16 accumulation stagnates at
# 2048, a naive exp overflows to inf, and a scalar tail that differs from the vector body is off
# by O(1) at the extremes: tests/test_hard.py plants the one-pass variance (layer_norm at
# mean / spread 1e4), the naive exp (logsigmoid's -log(1 + exp(-x))) and the tail (relu mapping
# a NaN in the last numel mod 8 elements to 0), each passing the typical checks and failing the
# hard tier's; the float16 accumulation is not planted yet (2026-12-01).
HARD_EXTRA_ROUNDINGS = 8
HARD_FLOOR_ULPS = 8
# Records (or results) without derived terms (recurrent layers, attention, CTC, most losses'
# gradients: suite/conditioning.py lists what is derived) keep their typical absolute row, and
# add HARD_SENSITIVITY times the change of the reference's result when every input and the
# cotangent are scaled by 1 + d, d uniform in +-HARD_SHAKE_ULPS u_acc: the backward-error
# reading the optimizer check uses (OPTIMIZER_SHAKE_ULPS, OPTIMIZER_SENSITIVITY, below): a
# backward-stable kernel returns the exact result of inputs that close, and one random shake
# sees one draw of such noise, torch's rounding another: 16x covers the spread. Where the
# reference jumps under such noise (a hinge whose argument is 1 - x_j + x_i with x ~ 1e18, a
# softmax of tied scores ~1e36), one draw may land on the same side; the largest change over
# HARD_SHAKES = 3 draws misses a coin-flip jump with probability 1/8, and the hard tier keeps
# such ties out of its draws where it can (suite/inputs/losses.py clips the arrays a kink rule
# reads). Computed only where a comparison would fail without it (2 HARD_SHAKES more reference
# evaluations).
# * Gate derivatives (the recurrent records' ``OpSpec.gates``, suite/conditioning.py
#   RecurrentGates): a kernel forms sigma' = s (1 - s) and tanh' = 1 - t^2 from the ROUNDED
#   activation: an absolute error of (1 + HARD_EXTRA_ROUNDINGS) u_acc times s |1 - 2 s| (sigma')
#   or 2 t^2 (tanh'), a relative u_acc / (1 - s) per rounding near saturation (2.4e-2 in
#   float32 at a pre-activation of 12.9), which no input perturbation reproduces; its
#   first-order bound, carried back through BPTT with magnitudes, is added to each gradient's
#   allowance. Derived, not fitted: torch 2.13.0's float32 gru, gru_cell and lstm_cell at the
#   exp edge were off by up to 1.8e-3 relative (2026-12-01), at most a tenth of the bound in
#   the cases analysed, and within a few ulp of the reference's BPTT on float32 activations.
HARD_SHAKE_ULPS = 4
HARD_SENSITIVITY = 16.0
HARD_SHAKES = 3


# --- The optimizer hard tier (suite.hard.optimizer_runs; suite/optimcheck.py, hard=True) --------
#
# Hard runs: gradients spanning 10^+-15 (float32) or 10^+-100 (float64) across the elements of
# one parameter, gradients that vanish (exactly 0, or 1e-30 of their size) and return, lr 1e-8
# or 1e3, eps 1e-30 or 1. Each step is compared in lockstep as in the typical tier, with:
# * rtol: the OPTIMIZER row's (a handful of roundings of one update, relative to the result).
# * atol: hard_floor(dtype, 1, 1024) in place of the row's fixed 1e-5 / 9e-13: a state entry of
#   1e-30 (Adam's v from gradients of 1e-15) is judged relatively, where 1e-5 would pass any
#   value. An update is elementwise (n = 1: no sums, but Adafactor's and Muon's norms, which the
#   shake below measures), and its values are not bounded by 1, so B is the op tier's cap 1024:
#   8 tiny (1 + 1024)^2 is ~1e-31 in float32, 1.9e-301 in float64.
# * per element, OPTIMIZER_SENSITIVITY times the greatest change of the reference's result over
#   HARD_SHAKES shakes of its inputs by OPTIMIZER_SHAKE_ULPS ulp (the typical tier's
#   backward-error reading, above), per element because one number per entry is set by the
#   largest elements when gradients span 200 decades, and with the hyper-parameters shaken too:
#   a kernel rounds its coefficients to the dtype, and torch's lerp_(g, 1 - beta1) rounds the
#   weight, which moves a beta1 near 0 by up to eps absolutely (beta1 = 2.2e-16 is 0 in float32,
#   so torch's first moment is g exactly where the reference's keeps 2.2e-16 m_(t-1) = 3e-8 of
#   an m_(t-1) of -1.3e8: foreach Adam, float32, seen 2026-12-01). Three shakes, as HARD_SHAKES
#   for the ops: one draw of a single element lands near 0 too often.
# * on the parameter, HARD_PARAM_TERMS rtol |theta_(t-1)|: theta_t = theta_(t-1) - update is a
#   sum of two terms, whose rounding is relative to |theta_(t-1)| + |update| <= 2 |theta_(t-1)|
#   + |theta_t| (Higham sec. 4.2), not to the result; where a step brings a parameter to ~0 the
#   row's rtol |theta_t| is 0. Adafactor's relative step alpha = RMS(theta) rho moves a 0-d
#   parameter by exactly theta at lr >= 1 (theta_t = 0), and float32 leaves one ulp of |theta|
#   (5.96e-8 at theta = -0.65; the shake cannot see it: alpha moves with theta). Elsewhere
#   |theta_t| ~ |theta_(t-1)| and it at most triples rtol.
# * runs are followed while the reference's parameters stay within suite.hard.limits(dtype,
#   2).huge (sqrt(max) / 8: 2.3e18 in float32), the range the op hard tier keeps for ops that
#   square their inputs, and its state entries finite and within limits(dtype).huge (max / 8):
#   updates square the gradients (drawn inside that range) and Adafactor squares the
#   parameters (RMS(theta) = ||theta|| / sqrt(n), whose float32 norm overflows at |theta| ~
#   1.8e19: lr 1e3 with decoupled weight decay 0.0625 multiplies theta by -61.5 per step); the
#   steps after the reference leaves that range are not compared. Muon normalises by ||X||_F
#   in bfloat16 whatever the dtype (by design), so its runs keep gradients within
#   limits(bfloat16, 2).huge / 100 (a momentum buffer sums up to 100 of them): a float64
#   gradient of 4.4e34 gives an infinite float32-accumulated norm and no step
#   (suite.hard.OPTIMIZER_OUT_OF_RANGE).
# Nothing fitted: tests/test_hard.py plants an Adagrad that flushes gradients below 1e-20 to 0,
# which passes the typical check and fails the hard one (state['sum'] 0 for ~1e-66).
HARD_PARAM_TERMS = 2.0


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The type torch's CPU kernels accumulate ``dtype`` in: float32 (opmath) for half
    precision, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def hard_summation(dtype: torch.dtype, n: int) -> float:
    """(n + HARD_EXTRA_ROUNDINGS) u_acc: the hard tier's allowance per unit of M_acc for sums of
    up to ``n`` terms (see "The hard tier")."""
    return (n + HARD_EXTRA_ROUNDINGS) * float(torch.finfo(accumulation_dtype(dtype)).eps) / 2


def hard_floor(dtype: torch.dtype, n: int, magnitude: float) -> float:
    """The hard tier's absolute floor for results that underflow (see "The hard tier")."""
    acc = torch.finfo(accumulation_dtype(dtype))
    own = torch.finfo(dtype)
    subnormal = float(own.smallest_normal) * float(own.eps)
    return HARD_FLOOR_ULPS * (float(acc.smallest_normal) * n * (1 + magnitude) ** 2
                              + subnormal * (1 + magnitude))

def summation(dtype: torch.dtype) -> float:
    """The per-unit-of-M allowance for sums of signed terms in ``dtype`` (0 where none is needed;
    see SUMMATION)."""
    return SUMMATION.get(dtype, 0.0)


def join(base: Tolerance, other: Tolerance | None) -> Tolerance:
    """The looser of two tolerances, element-wise ``max`` (JAX's ``join_tolerance``); ``base``
    itself when ``other`` is None."""
    if other is None:
        return base
    return Tolerance(rtol=max(base.rtol, other.rtol), atol=max(base.atol, other.atol))


def resolve(dtype: torch.dtype, kind: Kind, override: Tolerance | None = None) -> Tolerance:
    """The tolerance for comparing ``kind`` in ``dtype``: the table row, loosened by ``override``.

    Overrides only ever loosen (element-wise ``max``), like JAX's ``join_tolerance``.

    Raises:
        KeyError: with the fix, when there is no row for ``dtype``.
    """
    table = TABLES[kind]
    if dtype not in table:
        known = ", ".join(str(d).replace("torch.", "") for d in table)
        raise KeyError(f"no {kind.value} tolerance for {dtype}; add a row to suite/tolerances.py "
                       f"(known: {known})")
    return join(table[dtype], override)
