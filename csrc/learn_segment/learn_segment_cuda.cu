// CUDA kernel of torch.ops.solsa.learn_segment; semantics in learn_segment_params.h.
//
// Mapping: one thread per gradient element (i, j) (grid-stride, coalesced over j). For
// b = 0..B-1 it loads F_bij, e_bij into registers, runs the S steps, stores them back,
// and keeps the three gradient sums in registers (b outer, t inner, the CPU order),
// added to gw / gdecay / ggain once. Presyn (OTTT) trace: every thread runs the
// recurrence of e_bj privately (reading only); a second launch on the same stream then
// advances the shared (B, n_in) trace, once per (b, j). No atomics: deterministic.
#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "../common/macros.h"
#include "learn_segment_params.h"

namespace solsa {
namespace {

template <typename T>
struct LearnSegArgs {
  int64_t S, B, NO, NI;
  const T* x;
  int64_t sxt, sxb, sxj;
  const T* w;
  const T* decay;
  const T* gain;
  T* F;
  T* e;
  const T* sg0;
  const T* sgs;
  const T* mus;
  const double* coef;
  T* gw;
  T* gd;
  T* gg;
  T lam, vth;
};

constexpr int kThreads = 256;

template <typename T, bool FILTER, bool RESET, bool PRESYN, bool GD, bool GG>
__global__ void __launch_bounds__(kThreads) learn_seg_kernel(LearnSegArgs<T> a) {
  const int64_t total = a.NO * a.NI;
  const int64_t rows = a.B * a.NO;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
    const int64_t i = idx / a.NI, j = idx % a.NI;
    T d = T(0), g = T(0);
    if constexpr (FILTER) {
      d = a.decay[idx];
      g = a.gain[idx];
    }
    T sw = T(0), sd = T(0), sgn = T(0);
    for (int64_t b = 0; b < a.B; ++b) {
      const int64_t r = b * a.NO + i;
      const int64_t syn = b * total + idx;
      T f = FILTER ? a.F[syn] : T(0);
      T ev = a.e[PRESYN ? b * a.NI + j : syn];
      const T* SOLSA_RESTRICT xb = a.x + b * a.sxb + j * a.sxj;
      for (int64_t t = 0; t < a.S; ++t) {
        const T m = a.mus[t * rows + r];
        const T xv = xb[t * a.sxt];
        if constexpr (PRESYN) {
          ev = a.lam * ev + xv;
        } else {
          const T sgp = t == 0 ? a.sg0[r] : a.sgs[(t - 1) * rows + r];
          const T k = RESET ? a.lam - a.vth * sgp : a.lam;
          T fn;
          if constexpr (FILTER) {
            fn = d * f + g * xv;
            if constexpr (GD) sd += (T(a.coef[t]) * m) * f;
            f = fn;
          } else {
            fn = xv;
          }
          ev = k * ev + fn;
        }
        sw += m * ev;
        if constexpr (GG) sgn += (T(a.coef[t]) * m) * xv;
      }
      if constexpr (FILTER) a.F[syn] = f;
      if constexpr (!PRESYN) a.e[syn] = ev;
    }
    a.gw[idx] += sw;
    if constexpr (GD) a.gd[idx] += a.w[idx] * sd;
    if constexpr (GG) a.gg[idx] += a.w[idx] * sgn;
  }
}

// Presyn trace, once per (b, j): e_bj = lam * e_bj + x_tbj for t = 0..S-1.
template <typename T>
__global__ void __launch_bounds__(kThreads) presyn_seg_kernel(LearnSegArgs<T> a) {
  const int64_t n = a.B * a.NI;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t b = idx / a.NI, j = idx % a.NI;
    T ev = a.e[idx];
    for (int64_t t = 0; t < a.S; ++t) ev = a.lam * ev + a.x[t * a.sxt + b * a.sxb + j * a.sxj];
    a.e[idx] = ev;
  }
}

template <typename T, bool FILTER, bool RESET, bool PRESYN, bool GD, bool GG>
void launch(const LearnSegArgs<T>& a, cudaStream_t s) {
  learn_seg_kernel<T, FILTER, RESET, PRESYN, GD, GG>
      <<<grid_for(a.NO * a.NI, kThreads), kThreads, 0, s>>>(a);
  SOLSA_CUDA_CHECK_LAUNCH("solsa learn_segment");
  if constexpr (PRESYN) {
    presyn_seg_kernel<T><<<grid_for(a.B * a.NI, kThreads), kThreads, 0, s>>>(a);
    SOLSA_CUDA_CHECK_LAUNCH("solsa learn_segment (presyn trace)");
  }
}

template <typename T, bool RESET>
void launch_filter(const LearnSegArgs<T>& a, cudaStream_t s) {
  const bool gd = a.gd != nullptr, gg = a.gg != nullptr;
  if (gd && gg)  launch<T, true, RESET, false, true, true>(a, s);
  else if (gd)   launch<T, true, RESET, false, true, false>(a, s);
  else if (gg)   launch<T, true, RESET, false, false, true>(a, s);
  else           launch<T, true, RESET, false, false, false>(a, s);
}

template <typename T>
void run(const LearnSegmentParams& p, cudaStream_t s) {
  LearnSegArgs<T> a;
  a.S = p.seg; a.B = p.batch; a.NO = p.n_out; a.NI = p.n_in;
  a.x = static_cast<const T*>(p.x);
  a.sxt = p.x_stride_t; a.sxb = p.x_stride_b; a.sxj = p.x_stride_j;
  a.w = static_cast<const T*>(p.w);
  a.decay = static_cast<const T*>(p.decay);
  a.gain = static_cast<const T*>(p.gain);
  a.F = static_cast<T*>(p.F);
  a.e = static_cast<T*>(p.e);
  a.sg0 = static_cast<const T*>(p.sg0);
  a.sgs = static_cast<const T*>(p.sg_seq);
  a.mus = static_cast<const T*>(p.mu_seq);
  a.coef = p.coef;
  a.gw = static_cast<T*>(p.gw);
  a.gd = static_cast<T*>(p.gdecay);
  a.gg = static_cast<T*>(p.ggain);
  a.lam = T(p.lam); a.vth = T(p.vth);
  if (p.filter) {
    if (p.reset_in_trace) launch_filter<T, true>(a, s);
    else                  launch_filter<T, false>(a, s);
  } else if (p.reset_in_trace) {
    launch<T, false, true, false, false, false>(a, s);
  } else {
    launch<T, false, false, true, false, false>(a, s);
  }
}

}  // namespace

void learn_segment_cuda(const LearnSegmentParams& p, void* stream) {
  if (!learn_segment_check(p)) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: run<float>(p, s); break;
    case DType::Float64: run<double>(p, s); break;
    default: throw std::invalid_argument("solsa learn_segment: unknown dtype");
  }
}

}  // namespace solsa
