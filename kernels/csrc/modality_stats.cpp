// C++ extension for op 1 (kernels/cpp_ext.py): per-modality softmax statistics and the weighted
// multimodal cross-entropy forward/backward. CPU implementation here; the CUDA one lives in
// modality_stats_cuda.cu and is compiled only when CUDA is available (WITH_CUDA).
//
// CPU design: rows (m, b) are split across threads with at::parallel_for; the class loop of each
// row is a plain contiguous loop over fp32 values that the compiler vectorises (-O3
// -fassociative-math: the sums may reorder; exp is exp_nonpos below, plain arithmetic; no -ffast-math,
// whose finite-math assumption could drop a NaN). A NaN or +inf logit makes its row's outputs NaN: NaN - max (or inf - inf) is NaN, and NaN
// survives every order of the sums. Batch sums are reduced serially over rows afterwards, so the
// results are deterministic.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef WITH_CUDA
std::vector<torch::Tensor> stats_forward_cuda(torch::Tensor x, torch::Tensor labels, c10::optional<torch::Tensor> w);
torch::Tensor ce_backward_cuda(torch::Tensor x, torch::Tensor labels, torch::Tensor w, torch::Tensor state,
                               torch::Tensor grad_out);
#endif

namespace {

// exp(t) for t <= 0 (t = z - row max) in plain arithmetic, so the class loops vectorise without
// -ffast-math (glibc's vector expf is only declared under __FAST_MATH__). Cephes expf: n = round(t
// log2 e), r = t - n ln 2 in two FMA steps (explicit fma: not merged by -fassociative-math), a degree-6
// polynomial, then 2^n as two normal powers of two (n down to -150: the result underflows to 0 or a
// denormal as expf's would); about 1 ulp. t below -104 is clamped there (exp(-104) < the smallest
// denormal). No masking multiply: a NaN t (a NaN or +inf logit) gives NaN through the polynomial,
// and a mask would let the compiler turn NaN * 0 into a select of 0.
inline float exp_nonpos(float t) {
  const float lo = -104.0f;
  const float tc = t < lo ? lo : t;  // NaN compares false: kept
  const int n = static_cast<int>(tc * 1.44269504088896341f - 0.5f);  // round to nearest for tc <= 0
  const float fn = static_cast<float>(n);
  float r = std::fma(fn, -0.693359375f, tc);
  r = std::fma(fn, 2.12194440e-4f, r);
  float p = 1.9875691500e-4f;
  p = std::fma(p, r, 1.3981999507e-3f);
  p = std::fma(p, r, 8.3334519073e-3f);
  p = std::fma(p, r, 4.1665795894e-2f);
  p = std::fma(p, r, 1.6666665459e-1f);
  p = std::fma(p, r, 5.0000001201e-1f);
  const float y = std::fma(p * r, r, r) + 1.0f;
  const int n1 = n / 2, n2 = n - n1;  // each >= -75: normal powers of two
  const uint32_t b1 = static_cast<uint32_t>(n1 + 127) << 23, b2 = static_cast<uint32_t>(n2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &b1, sizeof(s1));
  std::memcpy(&s2, &b2, sizeof(s2));
  return (y * s1) * s2;
}

int64_t grain_rows(int64_t C) {
  // About 32k elements per task: small problems (B=64, C<=309) stay on one thread, where the
  // thread-pool hand-off would cost more than the work.
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1));
}

// Logits arrive either as one stacked [M, B, C] tensor (xs.size() == 1, dim 3) or as M tensors
// [B, C] (a Python list, passed through without stacking: no copy). Returns M, B, C and, per
// modality, an fp32 contiguous tensor (a no-op for contiguous fp32 input) and its row-0 pointer.
struct Logits {
  int64_t M = 0, B = 0, C = 0;
  bool stacked = false;
  std::vector<torch::Tensor> keep;  // owns any converted copies
  std::vector<const float*> base;
};

Logits view_logits(const std::vector<torch::Tensor>& xs) {
  Logits L;
  TORCH_CHECK_VALUE(!xs.empty(), "need at least one modality");
  if (xs.size() == 1 && xs[0].dim() == 3) {
    L.stacked = true;
    auto x = xs[0].to(torch::kFloat32).contiguous();
    L.M = x.size(0), L.B = x.size(1), L.C = x.size(2);
    L.keep.push_back(x);
    for (int64_t m = 0; m < L.M; ++m) L.base.push_back(x.data_ptr<float>() + m * L.B * L.C);
  } else {
    L.M = static_cast<int64_t>(xs.size());
    for (const auto& t : xs) {
      TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == xs[0].size(0) && t.size(1) == xs[0].size(1),
                        "every modality must be [B, C] with the same B, C");
      auto f = t.to(torch::kFloat32).contiguous();
      L.keep.push_back(f);
      L.base.push_back(f.data_ptr<float>());
    }
    L.B = xs[0].size(0), L.C = xs[0].size(1);
  }
  return L;
}

// Weights [M] (per modality: stride 0 over B) or [M, B]; fp32.
struct Weights {
  torch::Tensor keep;
  const float* p = nullptr;
  int64_t sm = 0, sb = 0;
};

Weights view_weights(const c10::optional<torch::Tensor>& w_in) {
  Weights W;
  if (!w_in.has_value()) return W;
  W.keep = w_in->to(torch::kFloat32);
  W.p = W.keep.data_ptr<float>();
  W.sm = W.keep.stride(0);
  W.sb = W.keep.dim() == 2 ? W.keep.stride(1) : 0;
  return W;
}

std::vector<torch::Tensor> stats_forward_cpu(const std::vector<torch::Tensor>& xs, torch::Tensor labels_in,
                                             c10::optional<torch::Tensor> w_in) {
  // 1. Views of the inputs; labels are range-checked here, before any computation (CPU: no sync).
  Logits L = view_logits(xs);
  const int64_t M = L.M, B = L.B, C = L.C;
  auto labels = labels_in.to(torch::kInt64).contiguous();
  TORCH_CHECK_VALUE(labels.dim() == 1 && labels.size(0) == B, "labels must be [B]");
  const int64_t* yp = labels.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK_VALUE(yp[b] >= 0 && yp[b] < C, "labels out of range: need 0 <= label < C = ", C, "; got ", yp[b]);
  auto opts = labels.options().dtype(torch::kFloat32);
  // lse, ce, entropy, p_true, |z| row sums, row max, log-sum: one allocation. The last two are the
  // backward's row state, kept apart: exp(z - lse) with lse rounded to fp32 loses |lse| * 2^-24 in
  // the exponent (3e-4 at |z| ~ 1e4), exp((z - max) - log_s) does not.
  auto out = torch::empty({7, M, B}, opts);
  float* op = out.data_ptr<float>();
  float *lp = op, *cp = op + M * B, *ep = op + 2 * M * B, *pp = op + 3 * M * B, *ap = op + 4 * M * B;
  float *mp = op + 5 * M * B, *sp_row = op + 6 * M * B;

  // 2. Per-row pass: max, then one fused loop for sum exp, sum exp * t (entropy numerator), sum |z|.
  at::parallel_for(0, M * B, grain_rows(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t m = r / B, b = r % B;
      const float* z = L.base[m] + b * C;
      float mx = z[0];
      for (int64_t c = 1; c < C; ++c) mx = std::max(mx, z[c]);
      float s = 0.f, a = 0.f, ab = 0.f;
      for (int64_t c = 0; c < C; ++c) {
        const float t = z[c] - mx;
        const float e = exp_nonpos(t);
        s += e;
        a += e * t;
        ab += std::fabs(z[c]);
      }
      const float log_s = std::log(s);
      lp[r] = mx + log_s;
      cp[r] = (mx - z[yp[b]]) + log_s;  // max - z_y first: no cancellation at |z| ~ 1e4
      ep[r] = log_s - a / s;            // entropy relative to the max: no cancellation for large |z|
      pp[r] = std::exp(-cp[r]);
      ap[r] = ab;
      mp[r] = mx;
      sp_row[r] = log_s;
    }
  });

  // 3. Serial, deterministic batch reductions in double, laid out [4, M]: rows ce_mean, entropy_mean,
  //    p_true_sum, abs_logit_mean; then the weighted loss sum_m mean_b w[m, b] * ce[m, b].
  Weights W = view_weights(w_in);
  auto sums = torch::empty({M * 4 + 1}, opts);
  float* sp = sums.data_ptr<float>();
  double loss = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    double sc = 0, se = 0, spt = 0, sa = 0, sw = 0;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t r = m * B + b;
      sc += cp[r];
      se += ep[r];
      spt += pp[r];
      sa += ap[r];
      if (W.p) sw += static_cast<double>(W.p[m * W.sm + b * W.sb]) * cp[r];
    }
    sp[0 * M + m] = static_cast<float>(sc / B);
    sp[1 * M + m] = static_cast<float>(se / B);
    sp[2 * M + m] = static_cast<float>(spt);
    sp[3 * M + m] = static_cast<float>(sa / B);
    loss += sw / B;
  }
  sp[4 * M] = static_cast<float>(loss);
  auto parts = out.unbind(0);
  return {parts[0], parts[1], parts[2], parts[3], sums, out.narrow(0, 5, 2)};
}

std::vector<torch::Tensor> ce_backward_cpu(const std::vector<torch::Tensor>& xs, torch::Tensor labels_in,
                                           torch::Tensor w_in, torch::Tensor state, torch::Tensor grad_out) {
  Logits L = view_logits(xs);
  const int64_t M = L.M, B = L.B, C = L.C;
  auto labels = labels_in.to(torch::kInt64).contiguous();
  Weights W = view_weights(w_in);
  auto st = state.to(torch::kFloat32).contiguous();  // [2, M, B]: row max, log-sum
  // 1. New output buffers (never the caller's logits), one per modality for list input so each
  //    list element gets its own gradient without a split; the upstream scalar is on the CPU.
  auto opts = st.options();
  std::vector<torch::Tensor> dxs;
  std::vector<float*> dbase;
  if (L.stacked) {
    dxs.push_back(torch::empty({M, B, C}, opts));
    for (int64_t m = 0; m < M; ++m) dbase.push_back(dxs[0].data_ptr<float>() + m * B * C);
  } else {
    for (int64_t m = 0; m < M; ++m) {
      dxs.push_back(torch::empty({B, C}, opts));
      dbase.push_back(dxs.back().data_ptr<float>());
    }
  }
  const float g = grad_out.to(torch::kFloat32).item<float>();
  const float* mxp = st.data_ptr<float>();
  const float* lsp = mxp + M * B;
  const int64_t* yp = labels.data_ptr<int64_t>();
  // 2. dx = w * g / B * (exp(z - max) / s - onehot), one vectorised loop per row. Written as
  //    exp(z - max) * (scale * exp(-log_s)), not exp((z - max) - log_s): with -fassociative-math the
  //    compiler may reassociate the latter into exp(z - (max + log_s)), the imprecise exp(z - lse) again.
  at::parallel_for(0, M * B, grain_rows(C), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t m = r / B, b = r % B;
      const float scale = W.p[m * W.sm + b * W.sb] * g / static_cast<float>(B);
      const float* z = L.base[m] + b * C;
      float* d = dbase[m] + b * C;
      const float mx = mxp[r], scale_over_s = scale * std::exp(-lsp[r]);
      for (int64_t c = 0; c < C; ++c) d[c] = exp_nonpos(z[c] - mx) * scale_over_s;
      d[yp[b]] -= scale;
    }
  });
  const auto dtype = xs[0].scalar_type();
  if (dtype != torch::kFloat32)
    for (auto& d : dxs) d = d.to(dtype);
  return dxs;
}

std::vector<torch::Tensor> stats_forward(std::vector<torch::Tensor> xs, torch::Tensor labels,
                                         c10::optional<torch::Tensor> w) {
#ifdef WITH_CUDA
  if (xs[0].is_cuda()) {
    auto x = (xs.size() == 1 && xs[0].dim() == 3) ? xs[0] : torch::stack(xs);
    c10::optional<torch::Tensor> w2;
    if (w.has_value()) w2 = w->dim() == 1 ? w->unsqueeze(1).expand({x.size(0), x.size(1)}) : *w;
    return stats_forward_cuda(x, labels, w2);
  }
#endif
  TORCH_CHECK(xs[0].device().is_cpu(), "modality_stats cpp extension was built without CUDA support");
  return stats_forward_cpu(xs, labels, w);
}

std::vector<torch::Tensor> ce_backward(std::vector<torch::Tensor> xs, torch::Tensor labels, torch::Tensor w,
                                       torch::Tensor state, torch::Tensor grad_out) {
#ifdef WITH_CUDA
  if (xs[0].is_cuda()) {
    const bool stacked = xs.size() == 1 && xs[0].dim() == 3;
    auto x = stacked ? xs[0] : torch::stack(xs);
    auto w2 = w.dim() == 1 ? w.unsqueeze(1).expand({x.size(0), x.size(1)}) : w;
    auto dx = ce_backward_cuda(x, labels, w2, state, grad_out);
    if (stacked) return {dx};
    return dx.unbind(0);
  }
#endif
  TORCH_CHECK(xs[0].device().is_cpu(), "modality_stats cpp extension was built without CUDA support");
  return ce_backward_cpu(xs, labels, w, state, grad_out);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("stats_forward", &stats_forward, "per-modality softmax statistics (+ weighted CE loss slot)",
        py::arg("xs"), py::arg("labels"), py::arg("w") = py::none());
  m.def("ce_backward", &ce_backward, "weighted multimodal CE backward into a new buffer");
}
