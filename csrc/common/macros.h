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

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define SOLSA_HAS_MXCSR 1
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

// Flush subnormal floats to zero (FTZ + DAZ) on the current thread while in scope.
// Traces decay geometrically and far-from-threshold surrogates underflow, so the
// kernels meet subnormal numbers all the time; on x86 each one costs a microcode
// assist of ~100 cycles, which made whole training runs many times slower. Values
// below 1.2e-38 (float32) / 2.2e-308 (float64) become 0: far below every tolerance.
// Each OpenMP thread sets and restores its own MXCSR; nothing leaks to torch.
class DenormalGuard {
 public:
#ifdef SOLSA_HAS_MXCSR
  DenormalGuard() : old_(_mm_getcsr()) { _mm_setcsr(old_ | 0x8040u); }
  ~DenormalGuard() { _mm_setcsr(old_); }

 private:
  unsigned int old_;
#else
  DenormalGuard() = default;
#endif
  DenormalGuard(const DenormalGuard&) = delete;
  DenormalGuard& operator=(const DenormalGuard&) = delete;
};

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
