// CPU (OpenMP) kernel of torch.ops.solsa.step; semantics in step_params.h.
//
// Layout of the work: one task per (b, i) row (flat index r = b * n_out + i, static
// schedule); inside a row one pass over j reads and writes F, e once, reads w, decay,
// gain, x once, and accumulates sum_j w_ij * Fn_bij. The flags are template
// parameters, so the j loop has no branches. The j reduction uses kLanes fixed partial
// sums and a fixed pairwise tree (see row_sum): the result does not depend on the
// thread count, the ISA the loop is vectorised for, or the buffers' alignment.
#include <stdexcept>

#include "../common/macros.h"
#include "../common/neuron.h"
#include "step_params.h"

namespace solsa {
namespace {

// Fixed-order horizontal sum of kLanes partial sums (pairwise tree).
template <typename T>
inline T lanes_sum(T* acc) {
  for (int s = kLanes / 2; s > 0; s /= 2)
    for (int l = 0; l < s; ++l) acc[l] += acc[l + s];
  return acc[0];
}

// One (b, i) row. FILTER: F and Fn = decay*F + gain*x; FPREV: store the old F;
// TRACE: per-synapse trace e = k*e + Fn (false in presyn mode); XUNIT: x_stride_j == 1.
template <typename T, bool FILTER, bool FPREV, bool TRACE, bool XUNIT>
inline T step_row(int64_t n, const T* SOLSA_RESTRICT x, int64_t sxj,
                  const T* SOLSA_RESTRICT w, const T* SOLSA_RESTRICT decay,
                  const T* SOLSA_RESTRICT gain, T* SOLSA_RESTRICT F,
                  T* SOLSA_RESTRICT Fp, T* SOLSA_RESTRICT e, T k) {
  T acc[kLanes];
  for (int l = 0; l < kLanes; ++l) acc[l] = T(0);

  auto body = [&](int64_t j, int l) __attribute__((always_inline)) {
    const T xv = XUNIT ? x[j] : x[j * sxj];
    T fn;
    if constexpr (FILTER) {
      const T fo = F[j];
      fn = decay[j] * fo + gain[j] * xv;
      if constexpr (FPREV) Fp[j] = fo;
      F[j] = fn;
    } else {
      fn = xv;
    }
    if constexpr (TRACE) e[j] = k * e[j] + fn;
    acc[l] += w[j] * fn;
  };

  const int64_t nv = n - n % kLanes;
  for (int64_t j0 = 0; j0 < nv; j0 += kLanes) {
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) body(j0 + l, l);
  }
  for (int64_t j = nv; j < n; ++j) body(j, int(j - nv));
  return lanes_sum(acc);
}

template <typename T, bool FILTER, bool FPREV, bool RESET, bool PRESYN, bool XUNIT>
void step_impl(const StepParams& p, int nt) {
  const int64_t B = p.batch, NO = p.n_out, NI = p.n_in;
  const T lam = T(p.lam), vth = T(p.vth), sigma = T(p.sigma);
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);
  const T* decay = static_cast<const T*>(p.decay);
  const T* gain = static_cast<const T*>(p.gain);
  T* F = static_cast<T*>(p.F);
  T* Fp = static_cast<T*>(p.F_prev);
  T* e = static_cast<T*>(p.e);
  T* V = static_cast<T*>(p.V);
  T* O = static_cast<T*>(p.O);
  T* sg = static_cast<T*>(p.sg);
  const int64_t sxb = p.x_stride_b, sxj = p.x_stride_j;
  const int64_t rows = B * NO;
  const bool par = nt > 1 && rows * (NI > 0 ? NI : 1) >= kParallelMinWork;
  (void)par;

#pragma omp parallel num_threads(nt) if (par)
  {
    DenormalGuard ftz;
    if constexpr (PRESYN) {
      // OTTT's presynaptic trace, once per (b, j): e_bj = lam * e_bj + x_bj.
#pragma omp for schedule(static) nowait
      for (int64_t b = 0; b < B; ++b) {
        const T* SOLSA_RESTRICT xb = x + b * sxb;
        T* SOLSA_RESTRICT eb = e + b * NI;
#pragma omp simd
        for (int64_t j = 0; j < NI; ++j) eb[j] = lam * eb[j] + (XUNIT ? xb[j] : xb[j * sxj]);
      }
    }
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / NO, i = r % NO;
      const T k = RESET ? lam - vth * sg[r] : lam;  // old sg, read before the update
      const int64_t off = r * NI;
      const T syn = step_row<T, FILTER, FPREV, !PRESYN, XUNIT>(
          NI, x + b * sxb, sxj, w + i * NI, FILTER ? decay + i * NI : nullptr,
          FILTER ? gain + i * NI : nullptr, FILTER ? F + off : nullptr,
          FPREV ? Fp + off : nullptr, PRESYN ? nullptr : e + off, k);
      neuron_update<T>(lam, vth, sigma, syn, V[r], O[r], sg[r]);
    }
  }
}

template <typename T, bool FILTER, bool FPREV, bool RESET, bool PRESYN>
void dispatch_x(const StepParams& p, int nt) {
  if (p.x_stride_j == 1)
    step_impl<T, FILTER, FPREV, RESET, PRESYN, true>(p, nt);
  else
    step_impl<T, FILTER, FPREV, RESET, PRESYN, false>(p, nt);
}

template <typename T>
void dispatch(const StepParams& p, int nt) {
  if (p.filter) {
    // F_prev is only defined with the filter (F[t-1]); without it F is not stored.
    if (p.F_prev) {
      if (p.reset_in_trace) dispatch_x<T, true, true, true, false>(p, nt);
      else                  dispatch_x<T, true, true, false, false>(p, nt);
    } else {
      if (p.reset_in_trace) dispatch_x<T, true, false, true, false>(p, nt);
      else                  dispatch_x<T, true, false, false, false>(p, nt);
    }
  } else if (p.reset_in_trace) {
    dispatch_x<T, false, false, true, false>(p, nt);  // e-prop: Fn = x, per-synapse trace
  } else {
    dispatch_x<T, false, false, false, true>(p, nt);  // presyn (OTTT)
  }
}

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
  switch (p.dtype) {
    case DType::Float32: dispatch<float>(p, nt); break;
    case DType::Float64: dispatch<double>(p, nt); break;
    default: throw std::invalid_argument("solsa step: unknown dtype");
  }
}

}  // namespace solsa
