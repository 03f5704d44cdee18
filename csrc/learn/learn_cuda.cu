// CUDA kernel of torch.ops.solsa.learn; semantics in learn_params.h.
//
// Mapping: one thread per (i, j) (grid-stride, coalesced over j); it sums over b in
// increasing order and adds once, exactly as the CPU kernel does:
//   gw += S_w;  gdecay += (coef * w) * S_d;  ggain += (coef * w) * S_g.
// No atomics: deterministic. Caller's stream; nothing is allocated.
#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "../common/macros.h"
#include "learn_params.h"

namespace solsa {
namespace {

template <typename T>
struct LearnArgs {
  int64_t B, NO, NI;
  const T* mu;
  const T* x;
  int64_t sxb, sxj;
  const T* w;
  const T* e;
  const T* Fp;
  T* gw;
  T* gd;
  T* gg;
  T coef;
};

constexpr int kThreads = 256;

template <typename T, bool GD, bool GG, bool PRESYN>
__global__ void __launch_bounds__(kThreads) learn_kernel(LearnArgs<T> a) {
  const int64_t n = a.NO * a.NI;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t i = idx / a.NI, j = idx % a.NI;
    T sw = T(0), sd = T(0), sgn = T(0);
    for (int64_t b = 0; b < a.B; ++b) {
      const T m = a.mu[b * a.NO + i];
      const int64_t syn = (b * a.NO + i) * a.NI + j;
      sw += m * a.e[PRESYN ? b * a.NI + j : syn];
      if constexpr (GD) sd += m * a.Fp[syn];
      if constexpr (GG) sgn += m * a.x[b * a.sxb + j * a.sxj];
    }
    a.gw[idx] += sw;
    if constexpr (GD || GG) {
      const T cw = a.coef * a.w[idx];
      if constexpr (GD) a.gd[idx] += cw * sd;
      if constexpr (GG) a.gg[idx] += cw * sgn;
    }
  }
}

template <typename T, bool GD, bool GG>
void launch(const LearnArgs<T>& a, bool presyn, cudaStream_t s) {
  const unsigned int grid = grid_for(a.NO * a.NI, kThreads);
  if (presyn) learn_kernel<T, GD, GG, true><<<grid, kThreads, 0, s>>>(a);
  else        learn_kernel<T, GD, GG, false><<<grid, kThreads, 0, s>>>(a);
  SOLSA_CUDA_CHECK_LAUNCH("solsa learn");
}

template <typename T>
void run(const LearnParams& p, cudaStream_t s) {
  LearnArgs<T> a;
  a.B = p.batch; a.NO = p.n_out; a.NI = p.n_in;
  a.mu = static_cast<const T*>(p.mu);
  a.x = static_cast<const T*>(p.x);
  a.sxb = p.x_stride_b; a.sxj = p.x_stride_j;
  a.w = static_cast<const T*>(p.w);
  a.e = static_cast<const T*>(p.e);
  a.Fp = static_cast<const T*>(p.F_prev);
  a.gw = static_cast<T*>(p.gw);
  a.gd = static_cast<T*>(p.gdecay);
  a.gg = static_cast<T*>(p.ggain);
  a.coef = T(p.coef);
  const bool gd = a.gd != nullptr, gg = a.gg != nullptr;
  if (gd && gg)  launch<T, true, true>(a, p.presyn, s);
  else if (gd)   launch<T, true, false>(a, p.presyn, s);
  else if (gg)   launch<T, false, true>(a, p.presyn, s);
  else           launch<T, false, false>(a, p.presyn, s);
}

}  // namespace

void learn_cuda(const LearnParams& p, void* stream) {
  if (p.batch <= 0 || p.n_out <= 0 || p.n_in <= 0) return;
  if (!p.mu || !p.e || !p.gw) throw std::invalid_argument("solsa learn: mu, e or gw is null");
  if ((p.gdecay || p.ggain) && !p.w)
    throw std::invalid_argument("solsa learn: gdecay/ggain need w");
  if (p.gdecay && !p.F_prev) throw std::invalid_argument("solsa learn: gdecay needs F_prev");
  if (p.ggain && !p.x) throw std::invalid_argument("solsa learn: ggain needs x");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: run<float>(p, s); break;
    case DType::Float64: run<double>(p, s); break;
    default: throw std::invalid_argument("solsa learn: unknown dtype");
  }
}

}  // namespace solsa
