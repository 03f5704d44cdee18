// CUDA kernel of torch.ops.solsa.forward_segment; semantics in forward_segment_params.h.
//
// Mapping: one warp per (b, i) row (grid-stride over rows). Each lane walks its j's
// (j = lane, lane + 32, ...: coalesced) and, for each, runs the S-step filter
// recurrence in registers, adding w_ij * Fn_bij[t] to its partial sum of step t in
// shared memory (S * 32 values per warp, bank-conflict free). Then, for t = 0..S-1, a
// fixed xor butterfly reduces the 32 partials (every lane ends with the same bits) and
// every lane runs the V / O / sg recurrence; lane 0 writes O_seq, sg_seq and finally
// V, O, sg. Each lane's partial sum runs over j in the same order as step_cuda.cu, so
// the results are bitwise those of S step calls on the GPU. Caller's stream; nothing
// is allocated; S <= kMaxSeg (the shared memory is sized by S).
#include <stdexcept>

#include "../common/cuda_check.cuh"
#include "../common/macros.h"
#include "../common/neuron.h"
#include "forward_segment_params.h"

namespace solsa {
namespace {

template <typename T>
struct FwdSegArgs {
  int64_t S, B, NO, NI;
  const T* x;
  int64_t sxt, sxb, sxj;
  const T* w;
  const T* decay;
  const T* gain;
  const T* F;
  T* V;
  T* O;
  T* sg;
  T* Oseq;
  T* sgseq;
  T lam, vth, sigma;
};

constexpr int kMaxWarps = 8;
constexpr int64_t kSmemBudget = 48 * 1024;

template <typename T, bool FILTER>
__global__ void __launch_bounds__(kMaxWarps * 32) fwd_seg_kernel(FwdSegArgs<T> a) {
  extern __shared__ __align__(16) unsigned char solsa_smem_raw[];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int64_t S = a.S;
  T* part = reinterpret_cast<T*>(solsa_smem_raw) + int64_t(warp) * S * 32;
  const int64_t rows = a.B * a.NO;
  const int64_t nwarps = (int64_t(gridDim.x) * blockDim.x) >> 5;
  for (int64_t r = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; r < rows;
       r += nwarps) {
    const int64_t b = r / a.NO, i = r % a.NO;
    for (int64_t t = 0; t < S; ++t) part[t * 32 + lane] = T(0);
    const T* SOLSA_RESTRICT xb = a.x + b * a.sxb;
    for (int64_t j = lane; j < a.NI; j += 32) {
      const T wv = a.w[i * a.NI + j];
      T f = T(0), d = T(0), g = T(0);
      if constexpr (FILTER) {
        f = a.F[r * a.NI + j];
        d = a.decay[i * a.NI + j];
        g = a.gain[i * a.NI + j];
      }
      for (int64_t t = 0; t < S; ++t) {
        const T xv = xb[t * a.sxt + j * a.sxj];
        T fn;
        if constexpr (FILTER) {
          fn = d * f + g * xv;
          f = fn;
        } else {
          fn = xv;
        }
        part[t * 32 + lane] += wv * fn;
      }
    }
    __syncwarp();
    T v = a.V[r], o = a.O[r], s = a.sg[r];
    for (int64_t t = 0; t < S; ++t) {
      T acc = part[t * 32 + lane];
#pragma unroll
      for (int sh = 16; sh > 0; sh >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, sh);
      neuron_update<T>(a.lam, a.vth, a.sigma, acc, v, o, s);
      if (lane == 0) {
        a.Oseq[t * rows + r] = o;
        a.sgseq[t * rows + r] = s;
      }
    }
    if (lane == 0) {
      a.V[r] = v;
      a.O[r] = o;
      a.sg[r] = s;
    }
    __syncwarp();
  }
}

template <typename T>
void run(const ForwardSegmentParams& p, cudaStream_t st) {
  FwdSegArgs<T> a;
  a.S = p.seg; a.B = p.batch; a.NO = p.n_out; a.NI = p.n_in;
  a.x = static_cast<const T*>(p.x);
  a.sxt = p.x_stride_t; a.sxb = p.x_stride_b; a.sxj = p.x_stride_j;
  a.w = static_cast<const T*>(p.w);
  a.decay = static_cast<const T*>(p.decay);
  a.gain = static_cast<const T*>(p.gain);
  a.F = static_cast<const T*>(p.F);
  a.V = static_cast<T*>(p.V);
  a.O = static_cast<T*>(p.O);
  a.sg = static_cast<T*>(p.sg);
  a.Oseq = static_cast<T*>(p.O_seq);
  a.sgseq = static_cast<T*>(p.sg_seq);
  a.lam = T(p.lam); a.vth = T(p.vth); a.sigma = T(p.sigma);
  const int64_t per_warp = p.seg * 32 * int64_t(sizeof(T));
  int warps = int(kSmemBudget / per_warp);
  if (warps > kMaxWarps) warps = kMaxWarps;
  if (warps < 1) warps = 1;
  const size_t smem = size_t(warps) * size_t(per_warp);
  const unsigned int grid = grid_for(p.batch * p.n_out, warps);
  if (p.filter) fwd_seg_kernel<T, true><<<grid, warps * 32, smem, st>>>(a);
  else          fwd_seg_kernel<T, false><<<grid, warps * 32, smem, st>>>(a);
  SOLSA_CUDA_CHECK_LAUNCH("solsa forward_segment");
}

}  // namespace

void forward_segment_cuda(const ForwardSegmentParams& p, void* stream) {
  if (p.seg > kMaxSeg)
    throw std::invalid_argument("solsa forward_segment: the CUDA kernel takes at most 64 steps per call");
  if (!forward_segment_check(p)) return;
  cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case DType::Float32: run<float>(p, s); break;
    case DType::Float64: run<double>(p, s); break;
    default: throw std::invalid_argument("solsa forward_segment: unknown dtype");
  }
}

}  // namespace solsa
