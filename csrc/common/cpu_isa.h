// Run-time choice between the builds of the CPU kernels: baseline (SSE2), AVX2 and, for
// the compute-bound segment kernels, AVX-512. Every build is compiled from the same .inc
// source in one translation unit (see forward_segment_cpu.cpp, step_cpu.cpp) with
// -ffp-contract=off and sums whose order does not depend on the vector width, so all
// builds give bitwise identical results; this header holds what the units share.
#pragma once
#include <cstdlib>
#include <cstring>

// GCC on x86-64 without a global -mavx2: compile a second, AVX2 copy of the kernels.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__AVX2__)
#define SOLSA_CPU_AVX2 1
// ... and a third, AVX-512 copy of the segment kernels (forward_segment, learn_segment):
// they run every synapse through a recurrence in registers, so twice the lanes and
// twice the registers (32) are worth having. The per-step kernels stream memory and stay
// at AVX2.
#define SOLSA_CPU_AVX512 1
#endif

namespace solsa {

enum class CpuIsa : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The best build this CPU can run, capped by SOLSA_CPU_ISA: "baseline" forces the SSE2
// build, "avx2" stops below AVX-512 (for tests and comparisons); unset or anything else
// means no cap. Read once per process.
inline CpuIsa cpu_isa_level() {
#ifdef SOLSA_CPU_AVX2
  static const CpuIsa level = [] {
    const char* env = std::getenv("SOLSA_CPU_ISA");
    const bool cap_base = env && std::strcmp(env, "baseline") == 0;
    const bool cap_avx2 = env && std::strcmp(env, "avx2") == 0;
    __builtin_cpu_init();
    if (cap_base || !__builtin_cpu_supports("avx2")) return CpuIsa::Baseline;
    // avx512f is all the AVX-512 copies use; libgcc checks that the OS saves the zmm state.
    if (cap_avx2 || !__builtin_cpu_supports("avx512f")) return CpuIsa::Avx2;
    return CpuIsa::Avx512;
  }();
  return level;
#else
  return CpuIsa::Baseline;
#endif
}

inline bool cpu_use_avx2() { return cpu_isa_level() >= CpuIsa::Avx2; }

inline bool cpu_use_avx512() {
#ifdef SOLSA_CPU_AVX512
  return cpu_isa_level() >= CpuIsa::Avx512;
#else
  return false;
#endif
}

}  // namespace solsa
