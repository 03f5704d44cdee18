// CUDA kernel of torch.ops.solsa.spatial_error; semantics in spatial_error_params.h.
//
// Mapping: one thread per (b, j) (grid-stride, coalesced over j), k summed in
// increasing order: acc = sum_k (mu_up_bk * w_kj) * gain_kj; out_bj = sg_bj * acc.
// Caller's stream; nothing is allocated.
#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "../common/macros.h"
#include "spatial_error_params.h"

namespace solsa {
namespace {

constexpr int kThreads = 256;

template <typename T, bool GAIN>
__global__ void __launch_bounds__(kThreads)
    spatial_error_kernel(int64_t B, int64_t NO, int64_t NI, const T* SOLSA_RESTRICT mu,
                         const T* SOLSA_RESTRICT w, const T* SOLSA_RESTRICT gain,
                         const T* SOLSA_RESTRICT sg, T* SOLSA_RESTRICT out) {
  const int64_t n = B * NI;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t b = idx / NI, j = idx % NI;
    T acc = T(0);
    for (int64_t k = 0; k < NO; ++k) {
      const T m = mu[b * NO + k];
      if constexpr (GAIN) acc += (m * w[k * NI + j]) * gain[k * NI + j];
      else                acc += m * w[k * NI + j];
    }
    out[idx] = sg[idx] * acc;
  }
}

template <typename T>
void run(const SpatialErrorParams& p, cudaStream_t s) {
  const unsigned int grid = grid_for(p.batch * p.n_in, kThreads);
  const T* mu = static_cast<const T*>(p.mu_up);
  const T* w = static_cast<const T*>(p.w);
  const T* gain = static_cast<const T*>(p.gain);
  const T* sg = static_cast<const T*>(p.sg);
  T* out = static_cast<T*>(p.out);
  if (gain)
    spatial_error_kernel<T, true><<<grid, kThreads, 0, s>>>(p.batch, p.n_out, p.n_in, mu, w, gain, sg, out);
  else
    spatial_error_kernel<T, false><<<grid, kThreads, 0, s>>>(p.batch, p.n_out, p.n_in, mu, w, gain, sg, out);
  SOLSA_CUDA_CHECK_LAUNCH("solsa spatial_error");
}

}  // namespace

void spatial_error_cuda(const SpatialErrorParams& p, void* stream) {
  if (p.batch <= 0 || p.n_in <= 0) return;
  if (p.n_out < 0) throw std::invalid_argument("solsa spatial_error: negative size");
  if (!p.sg || !p.out || (p.n_out > 0 && (!p.mu_up || !p.w)))
    throw std::invalid_argument("solsa spatial_error: mu_up, w, sg or out is null");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: run<float>(p, s); break;
    case DType::Float64: run<double>(p, s); break;
    default: throw std::invalid_argument("solsa spatial_error: unknown dtype");
  }
}

}  // namespace solsa
