// torch.ops.solsa.forward_segment: the forward pass of one PSP-LIF layer over a
// segment of S consecutive steps, time-blocked (each (b, i) row runs all S steps while
// its synapse state is in L1 / registers).
//
// Shapes (element strides):
//   x        (S, B, n_in)        read; strides x_stride_t, x_stride_b, x_stride_j (any)
//   w        (n_out, n_in)       read; contiguous
//   decay    (n_out, n_in)       read; contiguous; null when !filter
//   gain     (n_out, n_in)       read; contiguous; null when !filter
//   F        (B, n_out, n_in)    READ ONLY: the filter state at the segment start;
//                                null when !filter (F = x). It is NOT advanced: the
//                                learning pass (learn_segment) recomputes and stores it.
//   V, O, sg (B, n_out)          read+write, contiguous: in = segment start, out = end
//   O_seq, sg_seq (S, B, n_out)  write, contiguous: spikes and surrogates of every step
//
// Semantics, for t = 0..S-1 (Fl = a private copy of the F row):
//   Fn_bij = filter ? decay_ij * Fl_bij + gain_ij * x_tbj : x_tbj ;  Fl_bij = Fn_bij
//   V_bi   = (lam * V_bi + sum_j w_ij * Fn_bij) - vth * O_bi
//   O_bi   = V_bi >= vth ;  sg_bi = surrogate(V_bi)
//   O_seq[t] = O ; sg_seq[t] = sg
// The j sum uses exactly the order of the step op on the same device (CPU: kLanes
// partial sums + fixed tree; CUDA: per-lane j-order sums + xor butterfly), so V, O and
// sg are bitwise those of S calls of torch.ops.solsa.step. Traces are not touched.
#pragma once
#include <cstdint>
#include <stdexcept>
#include "../common/dtype.h"

namespace solsa {

// Longest segment one CUDA call handles (the per-warp shared-memory partial sums are
// sized by it); the Python side splits longer segments. The CPU kernel has no limit.
constexpr int64_t kMaxSeg = 64;

struct ForwardSegmentParams {
  int64_t seg = 0, batch = 0, n_out = 0, n_in = 0;
  DType dtype = DType::Float32;

  const void* x = nullptr;
  int64_t x_stride_t = 0, x_stride_b = 0, x_stride_j = 0;

  const void* w = nullptr;
  const void* decay = nullptr;
  const void* gain = nullptr;
  const void* F = nullptr;

  void* V = nullptr;
  void* O = nullptr;
  void* sg = nullptr;
  void* O_seq = nullptr;
  void* sg_seq = nullptr;

  double lam = 0.0, vth = 1.0, sigma = 1.0;
  bool filter = true;
};

// Checks shared by the CPU and CUDA entry points: throws std::invalid_argument on a bad
// struct; returns false when there is nothing to compute (an empty size).
inline bool forward_segment_check(const ForwardSegmentParams& p) {
  if (p.seg < 0 || p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa forward_segment: negative size");
  if (p.seg == 0 || p.batch == 0 || p.n_out == 0) return false;
  if (!p.V || !p.O || !p.sg || !p.O_seq || !p.sg_seq)
    throw std::invalid_argument("solsa forward_segment: V, O, sg, O_seq or sg_seq is null");
  if (p.n_in > 0 && (!p.x || !p.w))
    throw std::invalid_argument("solsa forward_segment: x or w is null");
  if (p.filter && p.n_in > 0 && (!p.decay || !p.gain || !p.F))
    throw std::invalid_argument("solsa forward_segment: filter needs decay, gain and F");
  return true;
}

void forward_segment_cpu(const ForwardSegmentParams& p, int num_threads);
#ifdef SOLSA_WITH_CUDA
void forward_segment_cuda(const ForwardSegmentParams& p, void* stream);
#endif

}  // namespace solsa
