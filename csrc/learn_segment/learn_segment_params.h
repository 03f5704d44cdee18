// torch.ops.solsa.learn_segment: the learning pass of one layer over a segment of S
// steps, time-blocked. It advances the synapse filter F and the trace e through the
// segment and adds the segment's gradients; forward_segment has produced the per-neuron
// quantities it needs (sg_seq) and the caller the errors mu_seq (already masked).
//
// Shapes (element strides):
//   x        (S, B, n_in)        read; strides x_stride_t, x_stride_b, x_stride_j (any)
//   w        (n_out, n_in)       read; contiguous; needed with gdecay / ggain
//   decay, gain (n_out, n_in)    read; contiguous; null when !filter
//   F        (B, n_out, n_in)    read+write: segment start in, segment end out; null
//                                when !filter
//   e        (B, n_out, n_in)    read+write (per-synapse trace)
//            (B, n_in)           when presyn (= !filter && !reset_in_trace)
//   sg0      (B, n_out)          read: sg before the segment (sg[t0-1])
//   sg_seq   (S, B, n_out)       read: sg of every step of the segment
//   mu_seq   (S, B, n_out)       read: the layer's error of every step
//   coef     (S) float64         read: decay/gain weight c_t of every step
//   gw, gdecay, ggain (n_out, n_in)  read+write (+=); gdecay/ggain null = not wanted
//
// Semantics, for t = 0..S-1:
//   sgp = t == 0 ? sg0 : sg_seq[t-1] ;  k = reset_in_trace ? lam - vth * sgp : lam
//   Fp = F ;  F = filter ? decay * F + gain * x[t] : x[t]
//   e = k * e + F          (presyn: e_bj = lam * e_bj + x_tbj)
//   gw     += sum_b mu[t]_bi * e_bij
//   gdecay += c_t * w_ij * sum_b mu[t]_bi * Fp_bij
//   ggain  += c_t * w_ij * sum_b mu[t]_bi * x_tbj
// F and e come out bitwise equal to S calls of the step op (except e-prop's e, the
// per-synapse trace without the filter: its recurrence is unrolled over the segment, so
// it is equal to round-off, see learn_segment_cpu.inc); the gradients equal S
// calls of the learn op in exact arithmetic (the sums run in another order: for each
// gradient element b outer, t inner, then added once; with the presynaptic trace as
// sum_b (lam M_b[0] e_b + sum_t M_b[t] x_tb), M the errors discounted backwards,
// M[t] = mu[t] + lam M[t+1]), deterministic for any thread count.
#pragma once
#include <cstdint>
#include <stdexcept>
#include "../common/dtype.h"

namespace solsa {

struct LearnSegmentParams {
  int64_t seg = 0, batch = 0, n_out = 0, n_in = 0;
  DType dtype = DType::Float32;

  const void* x = nullptr;
  int64_t x_stride_t = 0, x_stride_b = 0, x_stride_j = 0;
  const void* w = nullptr;
  const void* decay = nullptr;
  const void* gain = nullptr;

  void* F = nullptr;
  void* e = nullptr;
  const void* sg0 = nullptr;
  const void* sg_seq = nullptr;
  const void* mu_seq = nullptr;
  const double* coef = nullptr;  // S values (host memory for the CPU kernel, device for CUDA)

  void* gw = nullptr;
  void* gdecay = nullptr;
  void* ggain = nullptr;

  double lam = 0.0, vth = 1.0;
  bool filter = true;
  bool reset_in_trace = true;
};

// Checks shared by the CPU and CUDA entry points: throws std::invalid_argument on a bad
// struct; returns false when there is nothing to compute (an empty size).
inline bool learn_segment_check(const LearnSegmentParams& p) {
  if (p.seg < 0 || p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa learn_segment: negative size");
  if (p.seg == 0 || p.batch == 0 || p.n_out == 0 || p.n_in == 0) return false;
  if (!p.x || !p.e || !p.sg0 || !p.sg_seq || !p.mu_seq || !p.gw)
    throw std::invalid_argument("solsa learn_segment: x, e, sg0, sg_seq, mu_seq or gw is null");
  if (p.filter && (!p.decay || !p.gain || !p.F))
    throw std::invalid_argument("solsa learn_segment: filter needs decay, gain and F");
  if (!p.filter && (p.gdecay || p.ggain))
    throw std::invalid_argument("solsa learn_segment: gdecay/ggain need the filter");
  if ((p.gdecay || p.ggain) && (!p.w || !p.coef))
    throw std::invalid_argument("solsa learn_segment: gdecay/ggain need w and coef");
  return true;
}

void learn_segment_cpu(const LearnSegmentParams& p, int num_threads);
#ifdef SOLSA_WITH_CUDA
void learn_segment_cuda(const LearnSegmentParams& p, void* stream);
#endif

}  // namespace solsa
