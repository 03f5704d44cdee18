// Small portability helpers shared by the CPU and CUDA sources (torch-free).
#pragma once
#include <cstdint>

#if defined(__CUDACC__) || defined(__GNUC__) || defined(__clang__)
#define SOLSA_RESTRICT __restrict__
#elif defined(_MSC_VER)
#define SOLSA_RESTRICT __restrict
#else
#define SOLSA_RESTRICT
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

namespace solsa {

// Thread count actually used by the CPU kernels: num_threads <= 0 means "OpenMP's
// default" (omp_get_max_threads()); without OpenMP everything runs on one thread.
// The results never depend on it (every output element has one owner, every
// reduction a fixed order).
inline int resolve_threads(int num_threads) {
#ifdef _OPENMP
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  return 1;
#endif
}

// Below this many touched elements a call runs on the calling thread: a parallel
// region costs a few microseconds, more than the work. Does not change results.
constexpr int64_t kParallelMinWork = 1 << 15;

// Width of the explicit partial sums used for the j (or k) reductions on the CPU.
// Fixed, so the association of a reduction does not depend on the ISA the loop is
// vectorised for, on the buffers' alignment, or on the thread count.
constexpr int kLanes = 16;

// j-tile for accumulators that must stay in L1 (learn, spatial_error).
constexpr int64_t kTile = 512;

}  // namespace solsa
