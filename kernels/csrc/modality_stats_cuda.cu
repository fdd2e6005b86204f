// CUDA implementation of the modality_stats extension (compiled only when CUDA is available).
// Simple by design: one thread per (m, b) row for the forward (C is 6..309 in practice), one thread
// per element for the backward. Batch sums use atomicAdd (order-dependent last bits).
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <vector>

namespace {

template <typename scalar_t>
__global__ void stats_fwd_kernel(const scalar_t* __restrict__ x, const int64_t* __restrict__ y,
                                 const float* __restrict__ w, int64_t swm, int64_t swb, bool has_w,
                                 float* lse, float* ce, float* ent, float* pt, float* sums,
                                 int64_t M, int64_t B, int64_t C) {
  // 1. One thread per row (m, b).
  const int64_t b = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t m = blockIdx.y;
  if (b >= B) return;
  const int64_t r = m * B + b;
  const scalar_t* z = x + r * C;
  // 2. Max, then sum exp / sum exp * t / sum |z| relative to the max.
  float mx = static_cast<float>(z[0]);
  for (int64_t c = 1; c < C; ++c) mx = fmaxf(mx, static_cast<float>(z[c]));
  float s = 0.f, a = 0.f, ab = 0.f;
  for (int64_t c = 0; c < C; ++c) {
    const float zc = static_cast<float>(z[c]);
    const float t = zc - mx;
    const float e = __expf(t);
    s += e;
    a += e * t;
    ab += fabsf(zc);
  }
  // 3. Per-row outputs and pre-scaled per-modality sums.
  const float log_s = logf(s);
  const float l = mx + log_s;
  const float cr = (mx - static_cast<float>(z[y[b]])) + log_s;
  const float er = log_s - a / s;
  const float pr = expf(-cr);
  lse[r] = l; ce[r] = cr; ent[r] = er; pt[r] = pr;
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
                              const float* __restrict__ lse, const float* __restrict__ g,
                              scalar_t* __restrict__ dx, int64_t M, int64_t B, int64_t C) {
  const int64_t n = M * B * C;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / C, c = i % C, m = r / B, b = r % B;
    const float scale = w[m * swm + b * swb] * g[0] / static_cast<float>(B);
    const float p = __expf(static_cast<float>(x[i]) - lse[r]);
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
  torch::Tensor w = w_in.has_value() ? w_in->to(torch::kFloat32) : lse;
  const bool has_w = w_in.has_value();
  const dim3 block(128);
  const dim3 grid((B + 127) / 128, M);
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "stats_fwd_cuda", [&] {
    stats_fwd_kernel<scalar_t><<<grid, block, 0, stream>>>(
        x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w.data_ptr<float>(), has_w ? w.stride(0) : 0,
        has_w ? w.stride(1) : 0, has_w, lse.data_ptr<float>(), ce.data_ptr<float>(), ent.data_ptr<float>(),
        pt.data_ptr<float>(), sums.data_ptr<float>(), M, B, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {lse, ce, ent, pt, sums};
}

torch::Tensor ce_backward_cuda(torch::Tensor x_in, torch::Tensor labels_in, torch::Tensor w_in, torch::Tensor lse,
                               torch::Tensor grad_out) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  auto x = x_in.contiguous();
  auto labels = labels_in.to(torch::kInt64).contiguous();
  auto w = w_in.to(torch::kFloat32);
  auto g = grad_out.to(torch::kFloat32).reshape({1}).contiguous();  // stays on device: no sync
  auto l = lse.contiguous();
  const int64_t M = x.size(0), B = x.size(1), C = x.size(2);
  auto dx = torch::empty_like(x);
  const int64_t n = M * B * C;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((n + threads - 1) / threads, 65535));
  auto stream = at::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "ce_bwd_cuda", [&] {
    ce_bwd_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        x.data_ptr<scalar_t>(), labels.data_ptr<int64_t>(), w.data_ptr<float>(), w.stride(0), w.stride(1),
        l.data_ptr<float>(), g.data_ptr<float>(), dx.data_ptr<scalar_t>(), M, B, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return dx;
}
