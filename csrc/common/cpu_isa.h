// Run-time choice between the baseline (SSE2) and the AVX2 build of the CPU kernels.
// Both builds are compiled from the same .inc source in one translation unit each (see
// forward_segment_cpu.cpp, step_cpu.cpp); this header holds what the units share.
#pragma once
#include <cstdlib>
#include <cstring>

// GCC on x86-64 without a global -mavx2: compile a second, AVX2 copy of the kernels.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define SOLSA_CPU_AVX2 1
#endif

namespace solsa {

// True when the AVX2 build should run: the CPU has AVX2 and SOLSA_CPU_ISA is not
// "baseline" (that setting forces the SSE2 build, for tests and comparisons).
inline bool cpu_use_avx2() {
#ifdef SOLSA_CPU_AVX2
  static const bool yes = [] {
    const char* env = std::getenv("SOLSA_CPU_ISA");
    if (env && std::strcmp(env, "baseline") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
#else
  return false;
#endif
}

}  // namespace solsa
