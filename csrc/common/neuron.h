// Per-neuron arithmetic shared by the CPU and CUDA kernels, so both evaluate the
// same expressions in the same order, in the buffer's own type T (float math for
// float32, including expf; double math for float64).
#pragma once

#if defined(__CUDACC__)
#define SOLSA_HD __host__ __device__ __forceinline__
#else
#define SOLSA_HD inline
#endif

#include <cmath>

namespace solsa {

SOLSA_HD float solsa_exp(float x) { return expf(x); }
SOLSA_HD double solsa_exp(double x) { return exp(x); }

// sqrt(2 pi)
constexpr double kSqrt2Pi = 2.50662827463100050242;

// sg = exp(-(V - vth)^2 / (2 sigma^2)) / (sigma * sqrt(2 pi)), evaluated as
//   d = V - vth;  exp(-(d * d) / (2 * sigma * sigma)) / (sigma * sqrt2pi)
template <typename T>
SOLSA_HD T surrogate(T v, T vth, T sigma) {
  const T d = v - vth;
  return solsa_exp(-(d * d) / (T(2) * sigma * sigma)) / (sigma * T(kSqrt2Pi));
}

// Membrane, spike and surrogate of one neuron given the synaptic sum `syn`:
//   V = (lam * V_old + syn) - vth * O_old;  O = V >= vth;  sg = surrogate(V)
template <typename T>
SOLSA_HD void neuron_update(T lam, T vth, T sigma, T syn, T& V, T& O, T& sg) {
  const T v = (lam * V + syn) - vth * O;
  V = v;
  O = v >= vth ? T(1) : T(0);
  sg = surrogate(v, vth, sigma);
}

}  // namespace solsa
