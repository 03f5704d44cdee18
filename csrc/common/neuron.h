// Per-neuron arithmetic shared by the CPU and CUDA kernels, so both evaluate the
// same expressions in the same order, in the buffer's own type T (float math for
// float32, double math for float64; exp is our own, solsa_exp below, not libm's).
#pragma once

#if defined(__CUDACC__)
#define SOLSA_HD __host__ __device__ __forceinline__
#else
#define SOLSA_HD inline
#endif

#include <cmath>
#include <cstdint>
#include <cstring>

namespace solsa {

// exp(x) from IEEE multiplies, adds and integer bit operations only: no libm call, so a
// loop over it vectorises (the segment kernels evaluate the surrogate S steps at a time),
// and every build (SSE2, AVX2, AVX-512, CUDA with --fmad=false) computes the same bits.
// Within 2 ulp of the correctly rounded value (measured 1.21 ulp float32, 1.0 float64:
// python_tests/test_neuron_exp.py).
//   x = k ln2 + r, |r| <= ln2/2   (k by round-to-nearest with the 1.5 * 2^m trick; ln2
//                                  split into a short high part, exact times k, and a low part)
//   exp(r) by its Taylor polynomial (degree 7 in float, 13 in double: truncation error
//   below 1e-8 and 1e-17 relative), times 2^k1 * 2^k2 (k1 + k2 = k, both in the normal
//   exponent range, so every k of a finite result is reachable) built in the exponent bits.
// Below lo (a little under ln of the smallest normal number) it returns 0 (the kernels
// flush subnormals anyway; between lo and that, results are subnormal), above hi +inf
// (from hi down to ln of the largest finite number the result overflows to +inf by
// itself); NaN stays NaN.
template <typename T>
struct ExpConsts;
template <>
struct ExpConsts<float> {
  using Bits = uint32_t;
  static constexpr float log2e = 1.44269502163f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860676533e-06f;
  static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: (x + magic) - magic rounds x to an integer
  static constexpr Bits magic_bits = 0x4B400000u, bias = 127u;
  static constexpr int mant = 23, degree = 7;
  // lo just below ln(FLT_MIN) = -87.3365, hi just above ln(FLT_MAX) = 88.7228: every normal
  // result is computed; k stays in [-126, 128], where k1 and k2 are normal exponents
  static constexpr float lo = -87.5f, hi = 88.8f;
};
template <>
struct ExpConsts<double> {
  using Bits = uint64_t;
  static constexpr double log2e = 1.4426950408889634, ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr Bits magic_bits = 0x4338000000000000ull, bias = 1023u;
  static constexpr int mant = 52, degree = 13;
  // ln(DBL_MIN) = -708.3964, ln(DBL_MAX) = 709.7827; k stays in [-1022, 1024]
  static constexpr double lo = -708.5, hi = 709.9;
};

// 2^n for an integer-valued n (|n| < 2^22), given t = n + magic.
template <typename T>
SOLSA_HD T exp2_of_rounded(T t) {
  using C = ExpConsts<T>;
  typename C::Bits tb;
  memcpy(&tb, &t, sizeof(T));
  tb = (tb - C::magic_bits + C::bias) << C::mant;
  T y;
  memcpy(&y, &tb, sizeof(T));
  return y;
}

SOLSA_HD constexpr double inv_factorial(int n) {
  double f = 1.0;
  for (int i = 2; i <= n; ++i) f *= double(i);
  return 1.0 / f;
}

// sum_{m=n..N} r^(m-n) / m!  by Horner from the highest power (each 1/m! a double
// constant rounded once to T at compile time).
template <typename T, int n, int N>
SOLSA_HD T exp_horner(T r) {
  constexpr T c = T(inv_factorial(n));
  if constexpr (n == N) {
    return c;
  } else {
    return exp_horner<T, n + 1, N>(r) * r + c;
  }
}

template <typename T>
SOLSA_HD T solsa_exp(T x) {
  using C = ExpConsts<T>;
  const T xc = x < C::lo ? C::lo : (x > C::hi ? C::hi : x);  // NaN passes through
  const T k = (xc * C::log2e + C::magic) - C::magic;        // round(x / ln2), exactly
  const T r = (xc - k * C::ln2_hi) - k * C::ln2_lo;
  const T p = exp_horner<T, 0, C::degree>(r);
  const T k1 = (k * T(0.5) + C::magic) - C::magic;  // k = k1 + k2, each about k / 2
  const T y = (p * exp2_of_rounded<T>(k1 + C::magic)) * exp2_of_rounded<T>((k - k1) + C::magic);
  return x < C::lo ? T(0) : (x > C::hi ? T(HUGE_VAL) : y);
}

// sqrt(2 pi)
constexpr double kSqrt2Pi = 2.50662827463100050242;

// sg = exp(-(V - vth)^2 / (2 sigma^2)) / (sigma * sqrt(2 pi)), evaluated as
//   d = V - vth;  exp(-(d * d) / (2 * sigma * sigma)) / (sigma * sqrt2pi)
template <typename T>
SOLSA_HD T surrogate(T v, T vth, T sigma) {
  const T d = v - vth;
  return solsa_exp(-(d * d) / (T(2) * sigma * sigma)) / (sigma * T(kSqrt2Pi));
}

// Membrane and spike of one neuron given the synaptic sum `syn`:
//   V = (lam * V_old + syn) - vth * O_old;  O = V >= vth
template <typename T>
SOLSA_HD void membrane_update(T lam, T vth, T syn, T& V, T& O) {
  const T v = (lam * V + syn) - vth * O;
  V = v;
  O = v >= vth ? T(1) : T(0);
}

// ... and its surrogate: sg = surrogate(V). (The CPU segment kernel runs the two parts
// as separate loops, so that the surrogates of a row's S steps vectorise.)
template <typename T>
SOLSA_HD void neuron_update(T lam, T vth, T sigma, T syn, T& V, T& O, T& sg) {
  membrane_update(lam, vth, syn, V, O);
  sg = surrogate(V, vth, sigma);
}

}  // namespace solsa
