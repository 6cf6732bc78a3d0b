// Rotary position embedding, rotate-half form, on x [B, S, H, D]. The angles p * f_i (f_i =
// theta^(-2i/D), or the given freqs of a scaled rotation) are formed in double and only their
// (scaled) cos/sin rounded to f32, so positions near 1e5 keep
// ~1e-7 accuracy; one cos/sin table [D/2] serves every batch row and head of a position.
#include <cmath>
#include <vector>

#include "cpu.h"
#include "elementwise.h"

namespace ignis::cpu {

// One head: x, out [D] with D = 2h; c, s [h] = cos, sin of the angles.
template <class T>
static void rope_head_scalar(T* out, const T* x, const float* c, const float* s, int64_t h) {
  for (int64_t i = 0; i < h; i++) {
    const float x1 = to_f32(x[i]), x2 = to_f32(x[i + h]);
    out[i] = from_f32<T>(x1 * c[i] - x2 * s[i]);
    out[i + h] = from_f32<T>(x2 * c[i] + x1 * s[i]);
  }
}

#if IGNIS_X86
template <class T>
IGNIS_AVX2 static void rope_heads_avx2(T* out, const T* x, const float* c, const float* s,
                                       int64_t h, int64_t heads) {
  for (int64_t k = 0; k < heads; k++, out += 2 * h, x += 2 * h) {
    int64_t i = 0;
    for (; i + 8 <= h; i += 8) {
      const __m256 x1 = load8(x + i), x2 = load8(x + i + h);
      const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
      store8(out + i, _mm256_fmsub_ps(x1, vc, _mm256_mul_ps(x2, vs)));      // x1 cos - x2 sin
      store8(out + i + h, _mm256_fmadd_ps(x2, vc, _mm256_mul_ps(x1, vs)));  // x2 cos + x1 sin
    }
    for (; i < h; i++) {
      const float x1 = to_f32(x[i]), x2 = to_f32(x[i + h]);
      out[i] = from_f32<T>(x1 * c[i] - x2 * s[i]);
      out[i + h] = from_f32<T>(x2 * c[i] + x1 * s[i]);
    }
  }
}
#endif

void rope(ThreadPool& pool, const Tensor& out, const Tensor& x, const RopeParams& p, const Tensor* positions) {
  if (x.numel() == 0) return;
  const int64_t B = x.dim(0), S = x.dim(1), H = x.dim(2), D = x.dim(3), h = D / 2;
  const int64_t position = p.position;
  const double scale = p.scale;
  std::vector<double> freq(static_cast<size_t>(h));  // [h]: freqs, or theta^(-2i/D)
  for (int64_t i = 0; i < h; i++)
    freq[size_t(i)] = p.freqs.size() ? p.freqs.data()[i] : std::pow(double(p.theta), -2.0 * double(i) / double(D));
  [[maybe_unused]] const bool simd = has_avx2();

  dispatch_float(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* xp = x.data<T>();
    const int32_t* pos = positions ? positions->data<int32_t>() : nullptr;
    // Work items ordered (s, b), so a chunk rebuilds the table only when the position changes.
    pool.parallel_for(S * B, row_grain(H * D), [&](int64_t r0, int64_t r1) {
      std::vector<float> table(size_t(2 * h));  // [2, h]: cos, then sin
      float* c = table.data();
      float* sn = table.data() + h;
      bool have = false;
      int64_t table_p = 0;
      for (int64_t r = r0; r < r1; r++) {
        const int64_t s = r / B, b = r % B;
        const int64_t at = pos ? int64_t(pos[b * S + s]) : position + s;
        if (!have || at != table_p) {
          const double p = double(at);
          for (int64_t i = 0; i < h; i++) {
            const double angle = p * freq[size_t(i)];
            c[i] = float(scale * std::cos(angle));
            sn[i] = float(scale * std::sin(angle));
          }
          table_p = at;
          have = true;
        }
        const int64_t off = (b * S + s) * H * D;
#if IGNIS_X86
        if (simd) {
          rope_heads_avx2(o + off, xp + off, c, sn, h, H);
          continue;
        }
#endif
        for (int64_t k = 0; k < H; k++) rope_head_scalar(o + off + k * D, xp + off + k * D, c, sn, h);
      }
    });
  });
}

}  // namespace ignis::cpu
