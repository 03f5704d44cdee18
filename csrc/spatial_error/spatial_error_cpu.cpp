// CPU (OpenMP) kernel of torch.ops.solsa.spatial_error; semantics in
// spatial_error_params.h.
//
// Work unit: one (b, j-tile) pair (flat index, static schedule). For it, k runs in
// increasing order and the tile's partial sums stay in L1, vectorised along j:
//   acc_j = sum_k (mu_up_bk * w_kj) * gain_kj      (or mu_up_bk * w_kj without gain)
//   out_bj = sg_bj * acc_j
// Results are bitwise independent of the thread count.
#include <stdexcept>

#include "../common/macros.h"
#include "spatial_error_params.h"

namespace solsa {
namespace {

template <typename T, bool GAIN>
void spatial_error_impl(const SpatialErrorParams& p, int nt) {
  const int64_t B = p.batch, NO = p.n_out, NI = p.n_in;
  const T* mu = static_cast<const T*>(p.mu_up);
  const T* w = static_cast<const T*>(p.w);
  const T* gain = static_cast<const T*>(p.gain);
  const T* sg = static_cast<const T*>(p.sg);
  T* out = static_cast<T*>(p.out);
  const int64_t ntiles = (NI + kTile - 1) / kTile;
  const int64_t units = B * ntiles;
  const bool par = nt > 1 && B * NO * NI >= kParallelMinWork;
  (void)par;

#pragma omp parallel num_threads(nt) if (par)
  {
    DenormalGuard ftz;
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t b = u / ntiles, j0 = (u % ntiles) * kTile;
      const int64_t len = (NI - j0) < kTile ? (NI - j0) : kTile;
      alignas(64) T acc[kTile];
      for (int64_t j = 0; j < len; ++j) acc[j] = T(0);
      for (int64_t k = 0; k < NO; ++k) {
        const T m = mu[b * NO + k];
        const T* SOLSA_RESTRICT wr = w + k * NI + j0;
        if constexpr (GAIN) {
          const T* SOLSA_RESTRICT gr = gain + k * NI + j0;
  #pragma omp simd
          for (int64_t j = 0; j < len; ++j) acc[j] += (m * wr[j]) * gr[j];
        } else {
  #pragma omp simd
          for (int64_t j = 0; j < len; ++j) acc[j] += m * wr[j];
        }
      }
      const T* SOLSA_RESTRICT sgr = sg + b * NI + j0;
      T* SOLSA_RESTRICT outr = out + b * NI + j0;
  #pragma omp simd
      for (int64_t j = 0; j < len; ++j) outr[j] = sgr[j] * acc[j];
    }
  }
}

}  // namespace

void spatial_error_cpu(const SpatialErrorParams& p, int num_threads) {
  if (p.batch <= 0 || p.n_in <= 0) return;  // empty output
  if (p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa spatial_error: negative size");
  if (!p.sg || !p.out || (p.n_out > 0 && (!p.mu_up || !p.w)))
    throw std::invalid_argument("solsa spatial_error: mu_up, w, sg or out is null");
  const int nt = resolve_threads(num_threads);
  switch (p.dtype) {
    case DType::Float32:
      if (p.gain) spatial_error_impl<float, true>(p, nt);
      else        spatial_error_impl<float, false>(p, nt);
      break;
    case DType::Float64:
      if (p.gain) spatial_error_impl<double, true>(p, nt);
      else        spatial_error_impl<double, false>(p, nt);
      break;
    default: throw std::invalid_argument("solsa spatial_error: unknown dtype");
  }
}

}  // namespace solsa
