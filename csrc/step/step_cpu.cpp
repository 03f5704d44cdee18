// CPU (OpenMP) kernel of torch.ops.solsa.step; semantics in step_params.h.
//
// Layout of the work: one task per (b, i) row (static schedule over the rows in (i, b)
// order, matching the learn op's split of the neurons; see the .inc); inside a row one
// pass over j reads and writes F, e once, reads w, decay, gain, x once, and accumulates
// sum_j w_ij * Fn_bij. The flags are template parameters, so the j loop has no branches. The j reduction uses kLanes fixed partial
// sums and a fixed pairwise tree (see row_sum): the result does not depend on the
// thread count, the ISA the loop is vectorised for, or the buffers' alignment.
#include <stdexcept>

#include "../common/cpu_isa.h"
#include "../common/macros.h"
#include "../common/neuron.h"
#include "step_params.h"

namespace solsa {
namespace {

// Baseline build (SSE2, the package's portable target).
namespace base {
#include "step_cpu.inc"
}  // namespace base

#ifdef SOLSA_CPU_AVX2
// The same kernel compiled for AVX2, picked at run time when the CPU has it (see
// common/cpu_isa.h). -ffp-contract=off holds here too: no FMA, the same IEEE operations
// in the same order, so both builds give bitwise identical results (no sum's order
// depends on the vector width).
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#include "step_cpu.inc"
}  // namespace avx2
#pragma GCC pop_options
#endif

void check(const StepParams& p) {
  if (p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa step: negative size");
  if (!p.w && p.n_out > 0 && p.n_in > 0) throw std::invalid_argument("solsa step: w is null");
  if (!p.x && p.n_in > 0) throw std::invalid_argument("solsa step: x is null");
  if (!p.e && p.n_in > 0) throw std::invalid_argument("solsa step: e is null");
  if (!p.V || !p.O || !p.sg) throw std::invalid_argument("solsa step: V, O or sg is null");
  if (p.filter && p.n_in > 0 && (!p.decay || !p.gain || !p.F))
    throw std::invalid_argument("solsa step: filter needs decay, gain and F");
}

}  // namespace

void step_cpu(const StepParams& p, int num_threads) {
  if (p.batch <= 0 || p.n_out <= 0) return;  // nothing to update
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
