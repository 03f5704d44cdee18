// CPU (OpenMP) kernel of torch.ops.solsa.learn; semantics in learn_params.h.
//
// Work unit: one chunk of consecutive gradient elements (whole rows i when n_in is
// small, a j-range of one row when it is large; static schedule), so every gradient
// element has exactly one owner (no atomics). Inside it the batch is summed in
// increasing b into L1-resident chunk accumulators, vectorised along j, then added
// once to gw / gdecay / ggain:
//   gw_ij     += S_w            S_w = sum_b mu_bi * e_bij        (b increasing)
//   gdecay_ij += (coef * w_ij) * S_d,   S_d = sum_b mu_bi * F_prev_bij
//   ggain_ij  += (coef * w_ij) * S_g,   S_g = sum_b mu_bi * x_bj
// Results are bitwise independent of the thread count.
#include <stdexcept>

#include "../common/macros.h"
#include "learn_params.h"

namespace solsa {
namespace {

template <typename T, bool GD, bool GG, bool PRESYN, bool XUNIT>
void learn_impl(const LearnParams& p, int nt) {
  const int64_t B = p.batch, NO = p.n_out, NI = p.n_in;
  const T* mu = static_cast<const T*>(p.mu);
  const T* x = static_cast<const T*>(p.x);
  const T* w = static_cast<const T*>(p.w);
  const T* e = static_cast<const T*>(p.e);
  const T* Fp = static_cast<const T*>(p.F_prev);
  T* gw = static_cast<T*>(p.gw);
  T* gd = static_cast<T*>(p.gdecay);
  T* gg = static_cast<T*>(p.ggain);
  const T coef = T(p.coef);
  const int64_t sxb = p.x_stride_b, sxj = p.x_stride_j;
  // Work unit: a chunk of kChunk consecutive elements of the row-major (n_out, n_in)
  // gradient. For a fixed b the matching e / F_prev elements are contiguous too, so
  // every b reads one long run (rows of several i when n_in is small).
  constexpr int64_t kChunk = 8192 / int64_t(sizeof(T));
  const int64_t total = NO * NI;
  const int64_t units = (total + kChunk - 1) / kChunk;
  const bool par = nt > 1 && B * total >= kParallelMinWork;
  (void)par;

#pragma omp parallel num_threads(nt) if (par)
  {
    DenormalGuard ftz;
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) {
      const int64_t c0 = u * kChunk;
      const int64_t len = (total - c0) < kChunk ? (total - c0) : kChunk;
      const int64_t i0 = c0 / NI, i1 = (c0 + len - 1) / NI;  // rows touched
      alignas(64) T aw[kChunk];
      alignas(64) T ad[GD ? kChunk : 1];
      alignas(64) T ag[GG ? kChunk : 1];
      for (int64_t q = 0; q < len; ++q) {
        aw[q] = T(0);
        if constexpr (GD) ad[q] = T(0);
        if constexpr (GG) ag[q] = T(0);
      }
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = i0; i <= i1; ++i) {
          // piece of row i inside the chunk: gradient flat [lo, hi), j = flat - i*NI
          const int64_t lo = (i * NI > c0 ? i * NI : c0);
          const int64_t hi = ((i + 1) * NI < c0 + len ? (i + 1) * NI : c0 + len);
          const int64_t j0 = lo - i * NI, n = hi - lo;
          const T m = mu[b * NO + i];
          T* SOLSA_RESTRICT awp = aw + (lo - c0);
          T* SOLSA_RESTRICT adp = GD ? ad + (lo - c0) : nullptr;
          T* SOLSA_RESTRICT agp = GG ? ag + (lo - c0) : nullptr;
          const T* SOLSA_RESTRICT er = PRESYN ? e + b * NI + j0 : e + b * total + lo;
          const T* SOLSA_RESTRICT fr = GD ? Fp + b * total + lo : nullptr;
          const T* SOLSA_RESTRICT xr = GG ? x + b * sxb + j0 * sxj : nullptr;
  #pragma omp simd
          for (int64_t j = 0; j < n; ++j) {
            awp[j] += m * er[j];
            if constexpr (GD) adp[j] += m * fr[j];
            if constexpr (GG) agp[j] += m * (XUNIT ? xr[j] : xr[j * sxj]);
          }
        }
      }
      T* SOLSA_RESTRICT gwr = gw + c0;
  #pragma omp simd
      for (int64_t q = 0; q < len; ++q) gwr[q] += aw[q];
      if constexpr (GD || GG) {
        const T* SOLSA_RESTRICT wr = w + c0;
        if constexpr (GD) {
          T* SOLSA_RESTRICT gdr = gd + c0;
  #pragma omp simd
          for (int64_t q = 0; q < len; ++q) gdr[q] += (coef * wr[q]) * ad[q];
        }
        if constexpr (GG) {
          T* SOLSA_RESTRICT ggr = gg + c0;
  #pragma omp simd
          for (int64_t q = 0; q < len; ++q) ggr[q] += (coef * wr[q]) * ag[q];
        }
      }
    }
  }
}

template <typename T, bool GD, bool GG, bool PRESYN>
void dispatch_x(const LearnParams& p, int nt) {
  if (!GG || p.x_stride_j == 1)
    learn_impl<T, GD, GG, PRESYN, true>(p, nt);
  else
    learn_impl<T, GD, GG, PRESYN, false>(p, nt);
}

template <typename T, bool GD, bool GG>
void dispatch_presyn(const LearnParams& p, int nt) {
  if (p.presyn) dispatch_x<T, GD, GG, true>(p, nt);
  else          dispatch_x<T, GD, GG, false>(p, nt);
}

template <typename T>
void dispatch(const LearnParams& p, int nt) {
  const bool gd = p.gdecay != nullptr, gg = p.ggain != nullptr;
  if (gd && gg)  dispatch_presyn<T, true, true>(p, nt);
  else if (gd)   dispatch_presyn<T, true, false>(p, nt);
  else if (gg)   dispatch_presyn<T, false, true>(p, nt);
  else           dispatch_presyn<T, false, false>(p, nt);
}

void check(const LearnParams& p) {
  if (p.batch < 0 || p.n_out < 0 || p.n_in < 0)
    throw std::invalid_argument("solsa learn: negative size");
  if (!p.mu || !p.e || !p.gw) throw std::invalid_argument("solsa learn: mu, e or gw is null");
  if ((p.gdecay || p.ggain) && !p.w)
    throw std::invalid_argument("solsa learn: gdecay/ggain need w");
  if (p.gdecay && !p.F_prev) throw std::invalid_argument("solsa learn: gdecay needs F_prev");
  if (p.ggain && !p.x) throw std::invalid_argument("solsa learn: ggain needs x");
}

}  // namespace

void learn_cpu(const LearnParams& p, int num_threads) {
  // batch == 0 adds an empty sum (zero): nothing changes.
  if (p.batch <= 0 || p.n_out <= 0 || p.n_in <= 0) return;
  check(p);
  const int nt = resolve_threads(num_threads);
  switch (p.dtype) {
    case DType::Float32: dispatch<float>(p, nt); break;
    case DType::Float64: dispatch<double>(p, nt); break;
    default: throw std::invalid_argument("solsa learn: unknown dtype");
  }
}

}  // namespace solsa
