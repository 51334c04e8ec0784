// The GRU's gate passes for one line and one time step, vectorised for the
// CPU at hand (AVX-512 where it has it, else AVX2; chosen at run time):
//
//   ForwardRow:  r = sigmoid(gx_r + b_r + gh_r), u = sigmoid(gx_u + b_u + gh_u),
//                c = tanh(gx_c + b_c + r * gh_c), h <- h + u * (c - h);
//                keeps [r, u, c, gh_c] for the backward pass (unless keep is
//                null), copies h to out.
//   BackwardRow: with g = dh + dhs (the carried and the output gradient),
//                d_c = g u (1 - c^2), d_r = d_c gh_c r (1 - r),
//                d_u = g (c - h_prev) u (1 - u); dgx = [d_r, d_u, d_c],
//                dgh = [d_r, d_u, r d_c] (the gradient of h @ w_h), db += dgx,
//                dh <- g (1 - u) (the caller adds dgh @ w_h^T).
//
//   AccumulateOuterProducts: dw [U, 3U] += hp^T @ dg over a block of lines,
//                the step's share of dW_h (hp: the lines' h_prev rows [n, U],
//                dg: their dgh rows [n, 3U]), kept in registers 8 rows of dw
//                at a time.
//
// Rows are `units` long per gate block (gx, gh, dgx, dgh: [3U]; keep: [4U]);
// h_prev may be null (zeros: the first step). The body is gru_gates_body.inc,
// compiled once per instruction set.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "gemm.h"

namespace reseg_kernels {
namespace gates_avx2 {
typedef float V __attribute__((vector_size(32)));
typedef int VI __attribute__((vector_size(32)));
// A broadcast (not `V{} + x`, which costs an addition: 0 + -0 is +0).
inline V Splat(float value) { return _mm256_set1_ps(value); }
// Division is slow next to the rest; an estimate and one Newton step are
// exact to about 1 ulp (1 / 0 and 1 / inf are never asked for here: the
// divisors are 1 + exp(.) >= 1).
inline V Reciprocal(V x) {
  const V estimate = _mm256_rcp_ps(x);
  return estimate * (Splat(2.0f) - x * estimate);
}
inline __m256i LaneMask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline V MaskedLoad(const float* p, int count) { return _mm256_maskload_ps(p, LaneMask(count)); }
inline void MaskedStore(float* p, V v, int count) { _mm256_maskstore_ps(p, LaneMask(count), v); }
#include "gru_gates_body.inc"
}  // namespace gates_avx2

#pragma GCC push_options
#pragma GCC target("avx512f")
namespace gates_avx512 {
typedef float V __attribute__((vector_size(64)));
typedef int VI __attribute__((vector_size(64)));
inline V Splat(float value) { return _mm512_set1_ps(value); }
inline V Reciprocal(V x) {
  const V estimate = _mm512_rcp14_ps(x);
  return estimate * (Splat(2.0f) - x * estimate);
}
inline __mmask16 LaneMask(int count) { return static_cast<__mmask16>((1u << count) - 1); }
inline V MaskedLoad(const float* p, int count) { return _mm512_maskz_loadu_ps(LaneMask(count), p); }
inline void MaskedStore(float* p, V v, int count) { _mm512_mask_storeu_ps(p, LaneMask(count), v); }
#include "gru_gates_body.inc"
}  // namespace gates_avx512
#pragma GCC pop_options

struct GateKernels {
  void (*forward)(int units, const float* gx, const float* bias, const float* gh, float* h,
                  float* keep, float* out);
  void (*backward)(int units, const float* keep, const float* h_prev, const float* dhs,
                   float* dh, float* dgx, float* dgh, float* db);
  void (*outer_products)(int n, int units, int gates, const float* hp, const float* dg,
                         float* dw);
  const char* name;
};

inline const GateKernels& Gates() {
  static const GateKernels kernels =
      Cpu().avx512f
          ? GateKernels{gates_avx512::ForwardRow, gates_avx512::BackwardRow,
                        gates_avx512::AccumulateOuterProducts, "avx512"}
          : GateKernels{gates_avx2::ForwardRow, gates_avx2::BackwardRow,
                        gates_avx2::AccumulateOuterProducts, "avx2"};
  return kernels;
}

}  // namespace reseg_kernels
