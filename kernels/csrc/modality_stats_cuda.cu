// CUDA implementation of the modality_stats extension (compiled only when CUDA is available).
//
// Forward: one warp per (m, b) row, lanes striding over the classes, so a warp's loads of a row are
// coalesced (one thread per row made every load a separate 4-byte transaction 4*C bytes apart).
// Two passes over the row (max, then the sums relative to it; the second pass hits L1/L2), warp
// shuffles for the reductions. The label logit is found by comparing each class index with the
// label, never by indexing z[y]: an out-of-range label reads nothing out of bounds and yields a NaN
// cross-entropy (visible in the loss) instead of garbage. Batch sums use atomicAdd (order-dependent
// last bits).
// Backward: one thread per element, p = exp((z - max) - log_s) from the forward's row state (max and
// log-sum kept apart: exp(z - lse) with lse rounded to fp32 loses |lse| * 2^-24 in the exponent).
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 4;  // 4 warps = 128 threads per block

__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <typename scalar_t>
__global__ void stats_fwd_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ y,
                                 const float* __restrict__ w, int64_t swm, int64_t swb, bool has_w,
                                 float* lse, float* ce, float* ent, float* pt, float* sums, float* state,
                                 int64_t M, int64_t B, int64_t C) {
  // 1. One warp per row (m, b). The whole warp returns together, so the shuffles below see 32 lanes.
  const int lane = threadIdx.x % kWarp;
  const int64_t b = blockIdx.x * (int64_t)kRowsPerBlock + threadIdx.x / kWarp;
  const int64_t m = blockIdx.y;
  if (b >= B) return;
  const int64_t r = m * B + b;
  const scalar_t* z = x + r * C;
  const int64_t label = y[b];
  // 2. Row max (lanes stride over the classes: coalesced loads).
  float mx = -INFINITY;
  for (int64_t c = lane; c < C; c += kWarp) mx = fmaxf(mx, static_cast<float>(z[c]));
  mx = warp_max(mx);
  // 3. sum exp(t), sum exp(t) * t (entropy numerator), sum |z| and the label logit, t = z - max.
  float s = 0.f, a = 0.f, ab = 0.f, zy = 0.f, found = 0.f;
  for (int64_t c = lane; c < C; c += kWarp) {
    const float zc = static_cast<float>(z[c]);
    const float t = zc - mx;
    const float e = expf(t);
    s += e;
    a += e * t;
    ab += fabsf(zc);
    if (c == label) {  // compare, never index: an out-of-range label matches no lane
      zy = zc;
      found = 1.f;
    }
  }
  s = warp_sum(s);
  a = warp_sum(a);
  ab = warp_sum(ab);
  zy = warp_sum(zy);
  found = warp_sum(found);
  if (lane != 0) return;
  // 4. Per-row outputs, row state for the backward, and pre-scaled per-modality sums (lane 0).
  const float log_s = logf(s);
  const float cr = found > 0.f ? (mx - zy) + log_s : NAN;  // max - z_y first: no cancellation at |z| ~ 1e4
  const float er = log_s - a / s;
  const float pr = expf(-cr);
  lse[r] = mx + log_s; ce[r] = cr; ent[r] = er; pt[r] = pr;
  state[r] = mx;
  state[M * B + r] = log_s;
  const float inv_b = 1.f / static_cast<float>(B);
  atomicAdd(sums + 0 * M + m, cr * inv_b);
  atomicAdd(sums + 1 * M + m, er * inv_b);
  atomicAdd(sums + 2 * M + m, pr);
  atomicAdd(sums + 3 * M + m, ab * inv_b);
  if (has_w) atomicAdd(sums + 4 * M, w[m * swm + b * swb] * cr * inv_b);
}

template <typename scalar_t>
__global__ void ce_bwd_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ y,
                              const float* __restrict__ w, int64_t swm, int64_t swb,
                              const float* __restrict__ state, const float* __restrict__ g,
                              scalar_t* __restrict__ dx, int64_t M, int64_t B, int64_t C) {
  const int64_t n = M * B * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C, m = r / B, b = r % B;
    const float scale = w[m * swm + b * swb] * g[0] / static_cast<float>(B);
    const float p = expf((static_cast<float>(x[i]) - state[r]) - state[M * B + r]);
    dx[i] = static_cast<scalar_t>((p - (c == y[b] ? 1.f : 0.f)) * scale);
  }
}

}  // namespace

std::vector<torch::Tensor> stats_forward_cuda(torch::Tensor x_in, torch::Tensor labels_in, c10::optional<torch::Tensor> w_in) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto labels = labels_in.to(torch::kInt64).contiguous();
  const int64_t M = x.size(0), B = x.size(1), C = x.size(2);
  auto opts = x.options().dtype(torch::kFloat32);
  auto lse = torch::empty({M, B}, opts), ce = torch::empty({M, B}, opts);
  auto ent = torch::empty({M, B}, opts), pt = torch::empty({M, B}, opts);
  auto sums = torch::zeros({M * 4 + 1}, opts);
  auto state = torch::empty({2, M, B}, opts);  // row max, log-sum (for the backward)
  torch::Tensor w = w_in.has_value() ? w_in->to(torch::kFloat32) : lse;
  const bool has_w = w_in.has_value();
  const dim3 block(kWarp * kRowsPerBlock);
  const dim3 grid((B + kRowsPerBlock - 1) / kRowsPerBlock, M);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stats_fwd_cuda", [&] {
    stats_fwd_kernel<scalar_t><<<grid, block, 0, stream>>>(
        x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w.data_ptr<float>(), has_w ? w.stride(0) : 0,
        has_w ? w.stride(1) : 0, has_w, lse.data_ptr<float>(), ce.data_ptr<float>(), ent.data_ptr<float>(),
        pt.data_ptr<float>(), sums.data_ptr<float>(), state.data_ptr<float>(), M, B, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {lse, ce, ent, pt, sums, state};
}

torch::Tensor ce_backward_cuda(torch::Tensor x_in, torch::Tensor labels_in, torch::Tensor w_in, torch::Tensor state_in,
                               torch::Tensor grad_out) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto labels = labels_in.to(torch::kInt64).contiguous();
  auto w = w_in.to(torch::kFloat32);
  auto g = grad_out.to(torch::kFloat32).reshape({1}).contiguous();  // stays on device: no sync
  auto state = state_in.contiguous();
  const int64_t M = x.size(0), B = x.size(1), C = x.size(2);
  auto dx = torch::empty_like(x);
  const int64_t n = M * B * C;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ce_bwd_cuda", [&] {
    ce_bwd_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w.data_ptr<float>(), w.stride(0), w.stride(1),
        state.data_ptr<float>(), g.data_ptr<float>(), dx.data_ptr<scalar_t>(), M, B, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return dx;
}
