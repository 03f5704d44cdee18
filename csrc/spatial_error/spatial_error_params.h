// torch.ops.solsa.spatial_error: the spatial error of layer l from layer l+1's,
// SOLSA_MATH.md section 3.
//
// Shapes: here n_out is the upper layer's size and n_in the lower layer's size.
//   mu_up   (B, n_out)      read; contiguous; mu^{l+1}[t]
//   w       (n_out, n_in)   read; contiguous; w^{l+1}
//   gain    (n_out, n_in)   read; contiguous; gain^{l+1}; null = no synapse filter (gain 1)
//   sg      (B, n_in)       read; contiguous; sg^l[t]
//   out     (B, n_in)       write; contiguous; mu^l[t]
//
//   out_bj = sg_bj * sum_k mu_up_bk * w_kj * gain_kj     (k summed in increasing order)
#pragma once
#include <cstdint>
#include "../common/dtype.h"

namespace solsa {

struct SpatialErrorParams {
  int64_t batch = 0, n_out = 0, n_in = 0;
  DType dtype = DType::Float32;

  const void* mu_up = nullptr;
  const void* w = nullptr;
  const void* gain = nullptr;
  const void* sg = nullptr;
  void* out = nullptr;
};

void spatial_error_cpu(const SpatialErrorParams& p, int num_threads);
#ifdef SOLSA_WITH_CUDA
void spatial_error_cuda(const SpatialErrorParams& p, void* stream);
#endif

}  // namespace solsa
