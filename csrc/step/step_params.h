// torch.ops.solsa.step: one time step t of one PSP-LIF layer for a batch.
//
// Shapes (element strides, not bytes):
//   x        (B, n_in)           read; strides x_stride_b, x_stride_j (any, may be 0)
//   w        (n_out, n_in)       read; contiguous
//   decay    (n_out, n_in)       read; contiguous; null when !filter
//   gain     (n_out, n_in)       read; contiguous; null when !filter
//   F        (B, n_out, n_in)    read+write, contiguous; null when !filter
//   F_prev   (B, n_out, n_in)    write only: receives F[t-1] before F is updated;
//                                null = not wanted (only the adaptive kernel needs it)
//   e        (B, n_out, n_in)    read+write, contiguous: per-synapse eligibility trace
//            (B, n_in)           when presyn (= !filter && !reset_in_trace): the trace
//                                is the same for every output neuron (OTTT's trace)
//   V, O, sg (B, n_out)          read+write, contiguous
//
// Semantics, for every b, i, j (old values are those of step t-1):
//   k_bi   = reset_in_trace ? lam - vth * sg_bi(old) : lam
//   Fn_bij = filter ? decay_ij * F_bij(old) + gain_ij * x_bj : x_bj
//   F_prev_bij = F_bij(old)      (if F_prev) ;  F_bij = Fn_bij  (if filter)
//   e_bij  = k_bi * e_bij + Fn_bij                 (per-synapse trace)
//   e_bj   = lam * e_bj + x_bj                     (presyn trace)
//   V_bi   = lam * V_bi + sum_j w_ij * Fn_bij - vth * O_bi(old)
//   O_bi   = V_bi >= vth ? 1 : 0
//   sg_bi  = exp(-(V_bi - vth)^2 / (2 sigma^2)) / (sigma * sqrt(2 pi))
//
// Every output element is written by exactly one thread and every reduction runs
// in a fixed order, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include "../common/dtype.h"

namespace solsa {

struct StepParams {
  int64_t batch = 0, n_out = 0, n_in = 0;
  DType dtype = DType::Float32;

  const void* x = nullptr;
  int64_t x_stride_b = 0, x_stride_j = 0;

  const void* w = nullptr;
  const void* decay = nullptr;
  const void* gain = nullptr;

  void* F = nullptr;
  void* F_prev = nullptr;
  void* e = nullptr;
  void* V = nullptr;
  void* O = nullptr;
  void* sg = nullptr;

  double lam = 0.0, vth = 1.0, sigma = 1.0;
  bool filter = true;
  bool reset_in_trace = true;
};

void step_cpu(const StepParams& p, int num_threads);
#ifdef SOLSA_WITH_CUDA
void step_cuda(const StepParams& p, void* stream);  // stream: a cudaStream_t
#endif

}  // namespace solsa
