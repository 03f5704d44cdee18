// CPU (OpenMP) kernel of torch.ops.solsa.forward_segment; semantics in
// forward_segment_params.h.
//
// Work: one task per (b, i) row (static schedule). A row is swept in groups of a few j's
// whose decay, gain, w and F stay in registers while the group runs all S steps; each
// step's contribution goes to a thread-private (S, kLanes) array of partial sums
// (L1-resident). The j reduction of each step is the step op's: lane j % kLanes, every
// lane summing its j's in increasing order, then the fixed pairwise tree; so V, O, sg
// are bitwise those of S step calls and independent of the thread count. F is only read.
// Layers with fewer than kLanes inputs (one input per lane) run vectorised over 16 rows
// of a sample instead (impl_narrow in the .inc): the same lane sums and tree, bitwise.
// Without the filter (e-prop, OTTT) the work is one task per sample b instead, vectorised
// over the rows i, skipping zero inputs (impl_nofilter in the .inc explains it).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "../common/cpu_isa.h"
#include "../common/macros.h"
#include "../common/neuron.h"
#include "forward_segment_params.h"


namespace solsa {
namespace {

// Baseline build (SSE2, the package's portable target).
namespace base {
#define SOLSA_VEC_BYTES 16
#include "forward_segment_cpu.inc"
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
#include "forward_segment_cpu.inc"
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
#include "forward_segment_cpu.inc"
#undef SOLSA_VEC_BYTES
}  // namespace avx512
#pragma GCC pop_options
#endif

}  // namespace

void forward_segment_cpu(const ForwardSegmentParams& p, int num_threads) {
  if (!forward_segment_check(p)) return;
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
