// CPU (OpenMP) kernel of torch.ops.solsa.learn_segment; semantics in
// learn_segment_params.h.
//
// Three kernels, by configuration:
// - With the filter (SOLSA and its variants), work unit: a chunk of kChunk consecutive
//   elements of the row-major (n_out, n_in) gradient (static schedule), as learn_cpu.cpp;
//   every gradient element, and the F / e elements of every b behind it, has one owner.
//   The owner sweeps its elements in groups of a few j's; for each group, b = 0..B-1
//   (outer) and t = 0..S-1 (inner) run with F, e and the gradient sums in registers:
//     F = decay*F + gain*x[t];  e = k_t*e + F
//     aw += mu_t * e;   ad += (c_t * mu_t) * F_old;   ag += (c_t * mu_t) * x[t]
//   then gw += aw; gdecay += w * ad; ggain += w * ag once. The per-(b, t) scalars of a
//   row (mu, k, c_t * mu) are gathered once per row into a small thread-private array.
//   Sums: b outer, t inner, fixed order: bitwise independent of the thread count. F and
//   e are updated with the step op's expressions, so they are bitwise those of S step
//   calls. Layers with fewer than 16 inputs (impl_narrow in the .inc) run the same
//   expressions vectorised over 16 neurons instead of over the inputs: bitwise the same.
// - e-prop (no filter, per-synapse trace with the reset term): the trace recurrence is
//   unrolled over the segment (impl_eprop in the .inc explains it), so each trace element
//   is read and written once per segment and zero inputs drop out; e equals S step calls
//   to round-off (not bitwise). Narrow layers (eprop_narrow): vectorised over 16 neurons,
//   bitwise the same.
// - Presyn (OTTT) trace: the (B, n_in) trace is shared by all rows; its segment gradient
//   is a product of backward-discounted errors with the inputs (impl_presyn in the .inc),
//   and the trace itself is advanced afterwards, parallel over b (bitwise).
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "../common/cpu_isa.h"
#include "../common/macros.h"
#include "learn_segment_params.h"


namespace solsa {
namespace {

// Baseline build (SSE2, the package's portable target).
namespace base {
#define SOLSA_VEC_BYTES 16
#include "learn_segment_cpu.inc"
#undef SOLSA_VEC_BYTES
}  // namespace base

#ifdef SOLSA_CPU_AVX2
// The same kernels compiled for AVX2, picked at run time when the CPU has it. Only
// functions defined here get the target (the shared headers above stay baseline, so
// no AVX2 code can leak into another translation unit through an inline function).
// -ffp-contract=off applies as well: no FMA, the same IEEE operations in the same
// order, so both builds give bitwise identical results.
#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#define SOLSA_VEC_BYTES 32
#include "learn_segment_cpu.inc"
#undef SOLSA_VEC_BYTES
}  // namespace avx2
#pragma GCC pop_options
#endif

#ifdef SOLSA_CPU_AVX512
// And for AVX-512 (zmm registers preferred over GCC's default ymm), picked when the CPU
// has avx512f; the same operations again, so the same bits.
#pragma GCC push_options
#pragma GCC target("avx512f", "prefer-vector-width=512")
namespace avx512 {
#define SOLSA_VEC_BYTES 64
#include "learn_segment_cpu.inc"
#undef SOLSA_VEC_BYTES
}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

void learn_segment_cpu(const LearnSegmentParams& p, int num_threads) {
  if (!learn_segment_check(p)) return;
  const int nt = resolve_threads(num_threads);
#ifdef SOLSA_CPU_AVX512
  if (cpu_use_avx512()) {
    avx512::run(p, nt);
    return;
  }
#endif
#ifdef SOLSA_CPU_AVX2
  if (cpu_use_avx2()) {
    avx2::run(p, nt);
    return;
  }
#endif
  base::run(p, nt);
}

}  // namespace solsa
