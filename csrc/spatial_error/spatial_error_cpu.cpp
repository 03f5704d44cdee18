// CPU (OpenMP) kernel of torch.ops.solsa.spatial_error; semantics in
// spatial_error_params.h.
//
// Work unit: one (b, j-tile) pair (flat index, static schedule). For it, k runs in
// increasing order and the tile's partial sums stay in L1, vectorised along j:
//   acc_j = sum_k (mu_up_bk * w_kj) * gain_kj      (or mu_up_bk * w_kj without gain)
//   out_bj = sg_bj * acc_j
// Results are bitwise independent of the thread count.
#include <stdexcept>

#include "../common/cpu_isa.h"
#include "../common/macros.h"
#include "spatial_error_params.h"

namespace solsa {
namespace {

// Baseline build (SSE2, the package's portable target).
namespace base {
#include "spatial_error_cpu.inc"
}  // namespace base

#ifdef SOLSA_CPU_AVX2
// The same kernel compiled for AVX2, picked at run time when the CPU has it (see
// common/cpu_isa.h). -ffp-contract=off holds here too: same operations, same order, same bits.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#include "spatial_error_cpu.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif

}  // namespace

void spatial_error_cpu(const SpatialErrorParams& p, int num_threads) {
  if (p.batch <= 0 || p.n_in <= 0) return;  // empty output
  if (p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa spatial_error: negative size");
  if (!p.sg || !p.out || (p.n_out > 0 && (!p.mu_up || !p.w)))
    throw std::invalid_argument("solsa spatial_error: mu_up, w, sg or out is null");
  const int nt = resolve_threads(num_threads);
#ifdef SOLSA_CPU_AVX2
  if (cpu_use_avx2()) {
    avx2::run(p, nt);
    return;
  }
#endif
  base::run(p, nt);
}

}  // namespace solsa
