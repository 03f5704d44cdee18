// CPU (OpenMP) kernel of torch.ops.solsa.learn; semantics in learn_params.h.
//
// Work unit: one chunk of consecutive gradient elements (whole rows i when n_in is
// small, a j-range of one row when it is large; static schedule), so every gradient
// element has exactly one owner (no atomics). Inside it the batch is summed in
// increasing b into L1-resident chunk accumulators, vectorised along j, then added
// once to gw / gdecay / ggain:
//   gw_ij     += S_w            S_w = sum_b mu_bi * e_bij        (b increasing)
//   gdecay_ij += (coef * w_ij) * S_d,   S_d = sum_b mu_bi * F_prev_bij
//   ggain_ij  += (coef * w_ij) * S_g,   S_g = sum_b mu_bi * x_bj
// Results are bitwise independent of the thread count.
#include <stdexcept>

#include "../common/cpu_isa.h"
#include "../common/macros.h"
#include "learn_params.h"

namespace solsa {
namespace {

// Baseline build (SSE2, the package's portable target).
namespace base {
#include "learn_cpu.inc"
}  // namespace base

#ifdef SOLSA_CPU_AVX2
// The same kernel compiled for AVX2, picked at run time when the CPU has it (see
// common/cpu_isa.h). -ffp-contract=off holds here too: no FMA, the same IEEE operations
// in the same order, so both builds give bitwise identical results (no sum's order
// depends on the vector width).
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#include "learn_cpu.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif

void check(const LearnParams& p) {
  if (p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa learn: negative size");
  if (!p.mu || !p.e || !p.gw) throw std::invalid_argument("solsa learn: mu, e or gw is null");
  if ((p.gdecay || p.ggain) && !p.w)
    throw std::invalid_argument("solsa learn: gdecay/ggain need w");
  if (p.gdecay && !p.F_prev) throw std::invalid_argument("solsa learn: gdecay needs F_prev");
  if (p.ggain && !p.x) throw std::invalid_argument("solsa learn: ggain needs x");
}

}  // namespace

void learn_cpu(const LearnParams& p, int num_threads) {
  // batch == 0 adds an empty sum (zero): nothing changes.
  if (p.batch <= 0 || p.n_out <= 0 || p.n_in <= 0) return;
  check(p);
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
