// torch.ops.solsa.learn: accumulate the batch-summed gradients of one step t of one
// layer, given the layer's spatial error mu[t] (already masked by the caller).
//
// Shapes (element strides):
//   mu      (B, n_out)          read; contiguous
//   x       (B, n_in)           read; strides x_stride_b, x_stride_j; x[t] (gain gradient);
//                               may be null when ggain is null
//   w       (n_out, n_in)       read; contiguous; may be null when gdecay and ggain are null
//   e       (B, n_out, n_in)    read; contiguous; e[t]
//           (B, n_in)           when presyn (OTTT's presynaptic trace)
//   F_prev  (B, n_out, n_in)    read; contiguous; F[t-1]; may be null when gdecay is null
//   gw      (n_out, n_in)       read+write (+=); contiguous
//   gdecay  (n_out, n_in)       read+write (+=); null = not accumulated
//   ggain   (n_out, n_in)       read+write (+=); null = not accumulated
//
// Semantics:
//   gw_ij     += sum_b mu_bi * e_bij            (e_bj when presyn)
//   gdecay_ij += coef * w_ij * sum_b mu_bi * F_prev_bij
//   ggain_ij  += coef * w_ij * sum_b mu_bi * x_bj
// coef is the sequence weight (1 - gamma^(t+1)) / (1 - gamma) of SOLSA_MATH.md section 4.
// Each (i, j) is owned by one thread that sums over b in increasing order: deterministic.
#pragma once
#include <cstdint>
#include "../common/dtype.h"

namespace solsa {

struct LearnParams {
  int64_t batch = 0, n_out = 0, n_in = 0;
  DType dtype = DType::Float32;

  const void* mu = nullptr;
  const void* x = nullptr;
  int64_t x_stride_b = 0, x_stride_j = 0;
  const void* w = nullptr;
  const void* e = nullptr;
  const void* F_prev = nullptr;

  void* gw = nullptr;
  void* gdecay = nullptr;
  void* ggain = nullptr;

  double coef = 1.0;
  bool presyn = false;
};

void learn_cpu(const LearnParams& p, int num_threads);
#ifdef SOLSA_WITH_CUDA
void learn_cuda(const LearnParams& p, void* stream);
#endif

}  // namespace solsa
