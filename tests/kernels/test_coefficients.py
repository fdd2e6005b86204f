"""ARL and OGM-GE coefficient epilogues: hand-computed values, identities, and no host sync."""
import math

import pytest
import torch
from torch.overrides import TorchFunctionMode

from kernels import arl_coefficients, ogm_ge_coefficients
from kernels.stats_reference import released_arl_weights


# ------------------------------------------------------------------------------------------ ARL
def test_arl_two_modality_hand_example():
    H = torch.tensor([1.2, 0.4], dtype=torch.float64)  # h = [0.75, 0.25] -> h' = [0.75, 0.3]
    D = torch.tensor([3.0, 1.0], dtype=torch.float64)  # d = [0.75, 0.25]
    T = 4.0
    hp = [0.75, 0.3]
    q = [(1 / hp[0]) / (1 / hp[0] + 1 / hp[1]), (1 / hp[1]) / (1 / hp[0] + 1 / hp[1])]  # [2/7, 5/7]
    d = [0.75, 0.25]
    s = [T * d[1] * q[0], T * d[0] * q[1]]  # released: softmax(T [d_v q_a, d_a q_v])
    wa = math.exp(s[0]) / (math.exp(s[0]) + math.exp(s[1]))
    w = arl_coefficients(H, D, T)
    torch.testing.assert_close(w, torch.tensor([wa, 1 - wa], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert abs(q[0] - 2 / 7) < 1e-12


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("T", [1.0, 4.0, 8.0])
def test_arl_sigmoid_identity_and_released_numpy(seed, T):
    g = torch.Generator().manual_seed(seed)
    H = torch.rand(2, generator=g, dtype=torch.float64) * 2 + 0.01
    D = torch.rand(2, generator=g, dtype=torch.float64) * 5 + 0.01
    w = arl_coefficients(H, D, T)
    h = torch.clamp_min(H / H.sum(), 0.3)
    q = (1 / h) / (1 / h).sum()
    d = D / D.sum()
    torch.testing.assert_close(w[0], torch.sigmoid(T * (q[0] - d[0])), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=torch.float64))
    released = released_arl_weights(list(H.numpy()), list(D.numpy()), T)
    torch.testing.assert_close(w, torch.from_numpy(released), rtol=1e-12, atol=1e-12)


def test_arl_m_modalities_shape_and_floor():
    H = torch.tensor([0.05, 1.0, 1.0])
    D = torch.tensor([1.0, 1.0, 1.0])
    w = arl_coefficients(H, D, 4.0)
    assert w.shape == (3,) and torch.allclose(w.sum(), torch.tensor(1.0))
    # Low entropy = low variance -> larger inverse-variance share -> larger weight (equal dependence).
    assert w[0] > w[1] and torch.allclose(w[1], w[2])
    with pytest.raises(ValueError):
        arl_coefficients(torch.ones(2), torch.ones(3), 1.0)


# ------------------------------------------------------------------------------------------ OGM-GE
def _k(alpha, r):
    return 1 - math.tanh(alpha * r) if r > 1 else 1.0


def test_ogm_pair_hand():
    s = torch.tensor([40.0, 20.0], dtype=torch.float64)
    k = ogm_ge_coefficients(s, 0.8, rule="pair")
    torch.testing.assert_close(k, torch.tensor([_k(0.8, 2.0), 1.0], dtype=torch.float64))
    k = ogm_ge_coefficients(s.flip(0), 0.1, rule="pair")
    torch.testing.assert_close(k, torch.tensor([1.0, _k(0.1, 2.0)], dtype=torch.float64))
    # The sharp drop at rho ~ 1 noted in the protocol doc: alpha=0.8, rho=1.01 -> k ~ 0.33.
    k = ogm_ge_coefficients(torch.tensor([1.01, 1.0], dtype=torch.float64), 0.8)
    assert abs(float(k[0]) - (1 - math.tanh(0.808))) < 1e-12 and 0.32 < float(k[0]) < 0.34
    # Equal scores: nobody is modulated.
    torch.testing.assert_close(ogm_ge_coefficients(torch.tensor([3.0, 3.0]), 0.5), torch.ones(2))
    with pytest.raises(ValueError):
        ogm_ge_coefficients(torch.ones(3), 0.5, rule="pair")


def test_ogm_min_hand():
    s = torch.tensor([30.0, 10.0, 20.0], dtype=torch.float64)
    k = ogm_ge_coefficients(s, 0.5, rule="min")
    torch.testing.assert_close(k, torch.tensor([_k(0.5, 3.0), 1.0, _k(0.5, 2.0)], dtype=torch.float64))


def test_ogm_mean_hand():
    s = torch.tensor([30.0, 10.0, 20.0], dtype=torch.float64)  # mean 20
    k = ogm_ge_coefficients(s, 0.5, rule="mean")
    want = [1 - math.tanh(0.5 * (r - 1)) for r in (1.5, 0.5, 1.0)]
    torch.testing.assert_close(k, torch.tensor(want, dtype=torch.float64))
    assert float(k[1]) > 1.0  # weak modality is boosted


def test_ogm_bad_rule():
    with pytest.raises(ValueError):
        ogm_ge_coefficients(torch.ones(2), 0.5, rule="max")


# ------------------------------------------------------------------------------------------ no host sync
class _NoHostSync(TorchFunctionMode):
    """Fails on any tensor -> host conversion (what would be a device sync on CUDA)."""

    FORBIDDEN = {"item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__", "nonzero"}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", str(func))
        if name in self.FORBIDDEN:
            raise AssertionError(f"host sync via {name}")
        return func(*args, **(kwargs or {}))


def test_coefficients_do_not_touch_host():
    s = torch.tensor([40.0, 20.0])
    H, D = torch.tensor([0.5, 1.0]), torch.tensor([2.0, 1.0])
    with _NoHostSync():
        for rule in ("pair", "min", "mean"):
            out = ogm_ge_coefficients(s, 0.8, rule=rule)
            assert isinstance(out, torch.Tensor) and out.shape == (2,)
        w = arl_coefficients(H, D, torch.tensor(4.0))
        assert isinstance(w, torch.Tensor)
    # The guard itself works:
    with pytest.raises(AssertionError):
        with _NoHostSync():
            s.sum().item()


@pytest.mark.gpu
def test_gpu_coefficients_no_sync():
    s = torch.tensor([40.0, 20.0, 5.0], device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for rule in ("min", "mean"):
            ogm_ge_coefficients(s, 0.8, rule=rule)
        ogm_ge_coefficients(s[:2], 0.8, rule="pair")
        arl_coefficients(s, s.flip(0), 4.0)
    finally:
        torch.cuda.set_sync_debug_mode(0)


# ------------------------------------------------------------------------------------------ saturation
def _stats(logits, labels, backend="eager", dtype=torch.float32):
    from kernels import modality_stats

    return modality_stats(logits.to(dtype), labels, backend=backend)


@pytest.mark.parametrize("backend", ["eager", "triton", "cpp"])
def test_arl_saturated_softmax_is_finite(backend):
    """Issue 9 bug 1: every unimodal softmax one-hot in fp32 -> entropy_mean = [0, 0] -> was 0/0 = NaN."""
    logits = torch.tensor([[[200.0, 0.0]], [[150.0, 0.0]]])
    labels = torch.tensor([0])
    st = _stats(logits, labels, backend)
    assert torch.equal(st.entropy_mean, torch.zeros(2))  # the saturated case itself
    w = arl_coefficients(st.entropy_mean, st.abs_logit_mean, 2.0)
    assert torch.isfinite(w).all() and abs(float(w.sum()) - 1) < 1e-6
    # Documented fallback: equal certainty h = 1/M, so w = softmax(T q (1 - d)) with q = 1/2, d = D / sum D.
    d = st.abs_logit_mean / st.abs_logit_mean.sum()
    torch.testing.assert_close(w, torch.softmax(2.0 * 0.5 * (1 - d), 0))
    # The dependence share is guarded the same way (all-zero logits).
    w0 = arl_coefficients(torch.zeros(3), torch.zeros(3), 4.0)
    torch.testing.assert_close(w0, torch.full((3,), 1 / 3))


@pytest.mark.parametrize("rule", ["pair", "min", "mean"])
def test_ogm_ge_underflowed_scores_are_finite(rule):
    """Every p_true_sum 0 (saturated wrong predictions) or one of them 0: no NaN, limits as documented."""
    zero = torch.zeros(2)
    assert torch.equal(ogm_ge_coefficients(zero, 0.8, rule=rule), torch.ones(2))  # equal scores
    k = ogm_ge_coefficients(torch.tensor([0.0, 3.0]), 0.8, rule=rule)
    assert torch.isfinite(k).all()
    if rule != "mean":  # ratio_v = +inf: fully modulated; ratio_a = 0: untouched
        torch.testing.assert_close(k, torch.tensor([1.0, 0.0]))
    assert torch.isfinite(ogm_ge_coefficients(torch.tensor([0.0, 3.0]), 0.0, rule=rule)).all()  # alpha 0 * inf


def _arl64(H, D, T):
    """The ARL formula in float64, straight from the definition (no guard: the reference only sees sums > 0)."""
    h = torch.clamp_min(H / H.sum(), 0.3)
    q = (1 / h) / (1 / h).sum()
    return torch.softmax(T * q * (1 - D / D.sum()), 0)


def _ogm64(s, alpha, rule):
    ratio = {"pair": s / s.flip(0), "min": s / s.min(), "mean": s / s.mean()}[rule]
    if rule == "mean":
        return 1 - torch.tanh(alpha * (ratio - 1))
    return torch.where(ratio > 1, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))


@pytest.mark.parametrize("seed", range(4))
def test_saturation_fuzz_against_float64(seed):
    """400 random batches with logits up to 1e4: the fp32 pipeline never returns NaN/inf, and agrees
    with the float64 pipeline wherever fp32 can represent the quantities the formula divides by."""
    g = torch.Generator().manual_seed(seed)
    compared_arl = compared_ogm = 0
    for trial in range(100):
        M, B, C = 2, int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(2, 7, (1,), generator=g))
        scale = float(10 ** torch.empty(1).uniform_(0, 4, generator=g))
        x64 = torch.randn(M, B, C, generator=g, dtype=torch.float64) * scale
        y = torch.randint(0, C, (B,), generator=g)
        st32, st64 = _stats(x64, y), _stats(x64, y, dtype=torch.float64)
        w = arl_coefficients(st32.entropy_mean, st32.abs_logit_mean, 2.0)
        assert torch.isfinite(w).all() and abs(float(w.sum()) - 1) < 1e-5, (trial, st32)
        if float(st64.entropy_mean.min()) > 1e-30:  # both entropies are ordinary fp32 numbers
            torch.testing.assert_close(w.double(), _arl64(st64.entropy_mean, st64.abs_logit_mean, 2.0),
                                       rtol=0, atol=2e-3)
            compared_arl += 1
        for rule in ("pair", "min", "mean"):
            k = ogm_ge_coefficients(st32.p_true_sum, 0.8, rule=rule)
            assert torch.isfinite(k).all(), (trial, rule, st32.p_true_sum)
            # Log-space scores follow float64 even where p_true_sum underflows to 0 in fp32.
            k_log = ogm_ge_coefficients(st32.log_p_true_sum, 0.8, rule=rule, log_scores=True)
            want = _ogm64(st64.p_true_sum, 0.8, rule)
            s64 = st64.p_true_sum
            # k jumps at ratio = 1 (pair/min rules), where no finite precision agrees: compare away from it.
            off_jump = float((s64.max() / s64.min() - 1).abs()) > 1e-3 if float(s64.min()) > 0 else False
            if torch.isfinite(want).all() and off_jump:
                torch.testing.assert_close(k_log.double(), want, rtol=1e-4, atol=1e-4)
                compared_ogm += 1
    assert compared_arl > 10 and compared_ogm > 10  # the comparisons really ran


# ---- Issue 22 item 4: bad statistics are never turned into equal coefficients --------------------
_BAD = [float("nan"), float("inf"), -0.5]


@pytest.mark.parametrize("bad", _BAD, ids=["nan", "inf", "negative"])
@pytest.mark.parametrize("which", ["entropy", "dependence"])
def test_arl_bad_statistic_gives_nan_not_equal_shares(bad, which):
    """A NaN, infinite or negative H or D gives NaN ARL weights (the step's loss is NaN: the run is
    marked diverged) -- before, NaN entropies fell back to the equal split [0.5, 0.5]."""
    from kernels import arl_coefficients

    h, d = torch.tensor([0.4, 0.9]), torch.tensor([3.0, 2.0])
    (h if which == "entropy" else d)[0] = bad
    assert torch.isnan(arl_coefficients(h, d, 4.0)).all()
    assert torch.isfinite(arl_coefficients(torch.tensor([0.4, 0.9]), torch.tensor([3.0, 2.0]), 4.0)).all()


def test_arl_rejects_no_modality_and_a_bad_floor():
    from kernels import arl_coefficients

    with pytest.raises(ValueError, match="M = 0"):
        arl_coefficients(torch.zeros(0), torch.zeros(0), 4.0)
    with pytest.raises(ValueError, match="floor"):
        arl_coefficients(torch.ones(2), torch.ones(2), 4.0, floor=1.5)


@pytest.mark.parametrize("bad", _BAD, ids=["nan", "inf", "negative"])
@pytest.mark.parametrize("rule", ["pair", "min", "mean"])
def test_ogm_ge_bad_score_gives_nan_not_ones(bad, rule):
    """A NaN, infinite or negative score gives NaN coefficients, never the no-modulation [1, 1]."""
    from kernels import ogm_ge_coefficients

    s = torch.tensor([bad, 3.0])
    assert torch.isnan(ogm_ge_coefficients(s, 0.5, rule=rule)).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_ogm_ge_bad_log_score_gives_nan_but_minus_inf_is_a_zero_score(bad):
    from kernels import ogm_ge_coefficients

    assert torch.isnan(ogm_ge_coefficients(torch.tensor([bad, 1.0]), 0.5, log_scores=True)).all()
    k = ogm_ge_coefficients(torch.tensor([float("-inf"), 1.0]), 0.5, log_scores=True)
    torch.testing.assert_close(k, torch.tensor([1.0, 0.0]))  # ratio 0 and +inf: the documented limits


def test_ogm_ge_negative_alpha_rejected():
    """A negative number raises; a negative tensor alpha (checked on device, no sync) gives NaN."""
    from kernels import ogm_ge_coefficients

    s = torch.tensor([2.0, 3.0])
    with pytest.raises(ValueError, match="alpha"):
        ogm_ge_coefficients(s, -0.1)
    with pytest.raises(ValueError, match="alpha"):
        ogm_ge_coefficients(s, float("nan"))
    assert torch.isnan(ogm_ge_coefficients(s, torch.tensor(-0.1))).all()
    assert torch.isfinite(ogm_ge_coefficients(s, torch.tensor(0.1))).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_mad_weights_of_a_nonfinite_teacher_are_nan_not_uniform(bad):
    from kernels import mad_weights

    t = torch.randn(4, 5)
    t[2, 1] = bad
    assert torch.isnan(mad_weights(t)).all()
    torch.testing.assert_close(mad_weights(torch.zeros(3, 5).fill_(0)).sum(), torch.tensor(1.0))


# ---- Issue 23: mutation-score survivors of kernels/coefficients.py, killed by exact values ----------
def test_arl_all_zero_dependence_is_the_uniform_share_with_unequal_entropies():
    """Documented saturation fallback ``d = 1/M`` when every D_m is 0, checked where it matters: the
    entropies differ, so q is not uniform and w = softmax(T q (1 - 1/M)) depends on d's value."""
    for M, H in ((2, [0.2, 0.6]), (3, [0.1, 0.5, 0.4])):
        H = torch.tensor(H, dtype=torch.float64)
        q = _arl_q(H, 0.3)
        want = torch.softmax(4.0 * q * (1 - 1 / M), 0)
        torch.testing.assert_close(arl_coefficients(H, torch.zeros(M, dtype=torch.float64), 4.0), want)


def _arl_q(H, floor):
    h = torch.clamp_min(H / H.sum(), floor)
    return (1 / h) / (1 / h).sum()


def test_arl_all_zero_entropies_without_a_floor_are_equally_certain():
    """``h = 1/M`` when every H_m is 0 must hold on its own, not only thanks to the floor: with floor 0
    a zero share would give 1/0 and NaN weights."""
    D = torch.tensor([3.0, 1.0], dtype=torch.float64)
    w = arl_coefficients(torch.zeros(2, dtype=torch.float64), D, 2.0, floor=0.0)
    torch.testing.assert_close(w, torch.softmax(2.0 * 0.5 * (1 - D / D.sum()), 0))


@pytest.mark.parametrize("floor", [0.0, 1.0])
def test_arl_floor_bounds_are_accepted_and_applied(floor):
    """[0, 1] is closed: floor 0 is the unclamped formula, floor 1 clamps every share to 1 (q uniform)."""
    H = torch.tensor([0.1, 0.9], dtype=torch.float64)
    D = torch.tensor([1.0, 3.0], dtype=torch.float64)
    want = torch.softmax(4.0 * _arl_q(H, floor) * (1 - D / D.sum()), 0)
    torch.testing.assert_close(arl_coefficients(H, D, 4.0, floor=floor), want)
    if floor == 1.0:
        torch.testing.assert_close(want, torch.softmax(4.0 * 0.5 * (1 - D / D.sum()), 0))
    with pytest.raises(ValueError, match="floor"):
        arl_coefficients(H, D, 4.0, floor=-0.01)


def test_arl_tensor_floor_equals_the_number_floor():
    """A 0-d tensor floor (kept on device, no sync) clamps exactly like the same number."""
    H = torch.tensor([0.05, 0.6, 0.35], dtype=torch.float64)
    D = torch.tensor([2.0, 1.0, 1.0], dtype=torch.float64)
    for floor in (0.0, 0.2, 0.3):
        got = arl_coefficients(H, D, 4.0, floor=torch.tensor(floor, dtype=torch.float64))
        torch.testing.assert_close(got, arl_coefficients(H, D, 4.0, floor=floor), rtol=0, atol=0)
        torch.testing.assert_close(got, torch.softmax(4.0 * _arl_q(H, floor) * (1 - D / D.sum()), 0))


def test_arl_result_has_the_entropy_dtype_when_the_dependence_is_wider():
    """Returns: same dtype as ``entropy_mean`` (an fp64 dependence must not promote the weights)."""
    w = arl_coefficients(torch.tensor([0.4, 0.9]), torch.tensor([3.0, 2.0], dtype=torch.float64), 4.0)
    assert w.dtype == torch.float32


@pytest.mark.parametrize("rule", ["min", "mean"])
def test_ogm_ge_shape_contract(rule):
    """[M] with M >= 1: M = 0 and a 2-D score raise a ValueError naming the shape; M = 1 is valid and
    nothing is modulated (the modality's ratio to itself is 1)."""
    with pytest.raises(ValueError, match=r"\[M\]"):
        ogm_ge_coefficients(torch.zeros(0), 0.5, rule=rule)
    with pytest.raises(ValueError, match=r"\[M\]"):
        ogm_ge_coefficients(torch.ones(3, 2), 0.5, rule=rule)
    torch.testing.assert_close(ogm_ge_coefficients(torch.tensor([7.0]), 0.5, rule=rule), torch.ones(1))


@pytest.mark.parametrize("rule", ["pair", "min"])
def test_ogm_ge_tensor_alpha_zero_is_no_modulation(rule):
    """alpha >= 0 includes 0 as a tensor too (checked on device): k = 1 everywhere, as for the number 0."""
    s = torch.tensor([40.0, 20.0])
    torch.testing.assert_close(ogm_ge_coefficients(s, torch.tensor(0.0), rule=rule), torch.ones(2))
    torch.testing.assert_close(ogm_ge_coefficients(s, 0.0, rule=rule), torch.ones(2))
