// CUDA kernel of torch.ops.solsa.step; semantics in step_params.h.
//
// Mapping: one warp per (b, i) row (grid-stride over rows, so any B * n_out works);
// lanes stride over j (coalesced), each lane keeps a partial sum in j order, a fixed
// xor-butterfly reduces them, lane 0 updates V, O, sg. Every lane reads the OLD sg
// (for k_bi) before the reduction; the shuffles synchronise the warp, so lane 0's
// write happens after all the reads. In presyn mode a second, tiny kernel updates the
// (B, n_in) trace once per (b, j); the forward sum reads x, not e, so the order of the
// two launches is free. Everything runs on the caller's stream; nothing is allocated.
#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "../common/macros.h"
#include "../common/neuron.h"
#include "step_params.h"

namespace solsa {
namespace {

template <typename T>
struct StepArgs {
  int64_t B, NO, NI;
  const T* x;
  int64_t sxb, sxj;
  const T* w;
  const T* decay;
  const T* gain;
  T* F;
  T* Fp;
  T* e;
  T* V;
  T* O;
  T* sg;
  T lam, vth, sigma;
};

constexpr int kThreads = 256;
constexpr int kWarpsPerBlock = kThreads / 32;

template <typename T, bool FILTER, bool FPREV, bool RESET, bool PRESYN>
__global__ void __launch_bounds__(kThreads) step_rows_kernel(StepArgs<T> a) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = a.B * a.NO;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows;
       r += nwarps) {
    const int64_t b = r / a.NO, i = r % a.NO;
    const T sg_old = a.sg[r];
    const T k = RESET ? a.lam - a.vth * sg_old : a.lam;
    const T* SOLSA_RESTRICT xb = a.x + b * a.sxb;
    const T* SOLSA_RESTRICT wr = a.w + i * a.NI;
    const int64_t off = r * a.NI;
    T acc = T(0);
    for (int64_t j = lane; j < a.NI; j += 32) {
      const T xv = xb[j * a.sxj];
      T fn;
      if constexpr (FILTER) {
        const T fo = a.F[off + j];
        fn = a.decay[i * a.NI + j] * fo + a.gain[i * a.NI + j] * xv;
        if constexpr (FPREV) a.Fp[off + j] = fo;
        a.F[off + j] = fn;
      } else {
        fn = xv;
      }
      if constexpr (!PRESYN) a.e[off + j] = k * a.e[off + j] + fn;
      acc += wr[j] * fn;
    }
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, s);
    if (lane == 0) neuron_update<T>(a.lam, a.vth, a.sigma, acc, a.V[r], a.O[r], a.sg[r]);
    __syncwarp();
  }
}

// OTTT's presynaptic trace: e_bj = lam * e_bj + x_bj, once per (b, j).
template <typename T>
__global__ void __launch_bounds__(kThreads) presyn_trace_kernel(StepArgs<T> a) {
  const int64_t n = a.B * a.NI;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < n; idx += stride) {
    const int64_t b = idx / a.NI, j = idx % a.NI;
    a.e[idx] = a.lam * a.e[idx] + a.x[b * a.sxb + j * a.sxj];
  }
}

template <typename T, bool FILTER, bool FPREV, bool RESET, bool PRESYN>
void launch(const StepArgs<T>& a, cudaStream_t s) {
  const int64_t rows = a.B * a.NO;
  step_rows_kernel<T, FILTER, FPREV, RESET, PRESYN>
      <<<grid_for(rows, kWarpsPerBlock), kThreads, 0, s>>>(a);
  SOLSA_CUDA_CHECK_LAUNCH("solsa step");
  if constexpr (PRESYN) {
    if (a.NI > 0) {
      presyn_trace_kernel<T><<<grid_for(a.B * a.NI, kThreads), kThreads, 0, s>>>(a);
      SOLSA_CUDA_CHECK_LAUNCH("solsa step (presyn trace)");
    }
  }
}

template <typename T>
void run(const StepParams& p, cudaStream_t s) {
  StepArgs<T> a;
  a.B = p.batch; a.NO = p.n_out; a.NI = p.n_in;
  a.x = static_cast<const T*>(p.x);
  a.sxb = p.x_stride_b; a.sxj = p.x_stride_j;
  a.w = static_cast<const T*>(p.w);
  a.decay = static_cast<const T*>(p.decay);
  a.gain = static_cast<const T*>(p.gain);
  a.F = static_cast<T*>(p.F);
  a.Fp = static_cast<T*>(p.F_prev);
  a.e = static_cast<T*>(p.e);
  a.V = static_cast<T*>(p.V);
  a.O = static_cast<T*>(p.O);
  a.sg = static_cast<T*>(p.sg);
  a.lam = T(p.lam); a.vth = T(p.vth); a.sigma = T(p.sigma);
  if (p.filter) {
    if (p.F_prev) {
      if (p.reset_in_trace) launch<T, true, true, true, false>(a, s);
      else                  launch<T, true, true, false, false>(a, s);
    } else {
      if (p.reset_in_trace) launch<T, true, false, true, false>(a, s);
      else                  launch<T, true, false, false, false>(a, s);
    }
  } else if (p.reset_in_trace) {
    launch<T, false, false, true, false>(a, s);
  } else {
    launch<T, false, false, false, true>(a, s);
  }
}

}  // namespace

void step_cuda(const StepParams& p, void* stream) {
  if (p.batch <= 0 || p.n_out <= 0) return;
  if (p.n_in < 0) throw std::invalid_argument("solsa step: negative size");
  if (!p.V || !p.O || !p.sg || (p.n_in > 0 && (!p.x || !p.w || !p.e)))
    throw std::invalid_argument("solsa step: a required pointer is null");
  if (p.filter && p.n_in > 0 && (!p.decay || !p.gain || !p.F))
    throw std::invalid_argument("solsa step: filter needs decay, gain and F");
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: run<float>(p, s); break;
    case DType::Float64: run<double>(p, s); break;
    default: throw std::invalid_argument("solsa step: unknown dtype");
  }
}

}  // namespace solsa
