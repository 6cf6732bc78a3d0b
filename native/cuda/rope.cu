// Rotary position embedding on CUDA, rotate-half form, on x [B, S, H, D] (cpu::rope semantics;
// with per-token positions, each (b, s) forms its own angle).
// The angle is formed exactly as the CPU forms it: f = theta^(-2i/D) (or the given freqs, carried
// by value in the launch) and p * f in double, only the scaled cos/sin rounded to f32. Each
// thread owns one frequency i of one position s, computes its cos/sin once, and applies them to
// the pair (i, i + D/2) of several (b, h) heads.
#include "common.cuh"

namespace ignis::cuda {
namespace {

constexpr int kHeadsPerThread = 4;  // (b, h) heads a thread rotates per position, about

// The given frequencies of a scaled rotation, passed by value (2 KiB of the 4 KiB of parameters).
struct FreqTable {
  double f[kRopeMaxFreqs];
};

// Grid (ceil(D/2 / blockDim.x), <= S, <= B*H / (blockDim.y * kHeadsPerThread)), block (tx, ty):
// thread (x, y) takes i = blockIdx.x * tx + x, positions s = blockIdx.y + k gridDim.y, heads
// bh = blockIdx.z * ty + y + k gridDim.z ty. pos0 = position (+ *position_dev).
template <class T, bool kTable>
__global__ void rope_kernel(T* out, const T* x, int64_t S, int64_t BH, int64_t H, int64_t D, int64_t position,
                            const int64_t* position_dev, double theta, double scale, const FreqTable table,
                            const int32_t* positions) {
  const int64_t h2 = D / 2;
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= h2) return;
  const int64_t pos0 = position + (position_dev ? *position_dev : 0);
  double freq;
  if constexpr (kTable) freq = table.f[i];
  else freq = pow(theta, -2.0 * double(i) / double(D));  // theta^(-2i/D)
  for (int64_t s = blockIdx.y; s < S; s += gridDim.y) {
    const double angle = double(pos0 + s) * freq;
    const float c = float(scale * cos(angle)), sn = float(scale * sin(angle));
    for (int64_t bh = int64_t(blockIdx.z) * blockDim.y + threadIdx.y; bh < BH; bh += int64_t(gridDim.z) * blockDim.y) {
      const int64_t b = bh / H, h = bh - b * H;
      const int64_t off = ((b * S + s) * H + h) * D + i;  // x[b, s, h, i]
      const float x1 = to_f32(x[off]), x2 = to_f32(x[off + h2]);
      float cc = c, ss = sn;
      if (positions) {  // token (b, s)'s own position
        const double a = double(positions[b * S + s]) * freq;
        cc = float(scale * cos(a)), ss = float(scale * sin(a));
      }
      out[off] = from_f32<T>(x1 * cc - x2 * ss);
      out[off + h2] = from_f32<T>(x2 * cc + x1 * ss);
    }
  }
}

template <class T>
void rope_cuda(const Launch& L, T* out, const T* x, int64_t B, int64_t S, int64_t H, int64_t D, const RopeParams& p,
               const int64_t* position_dev, const int32_t* positions) {
  const int64_t h2 = D / 2, BH = B * H;
  const unsigned tx = h2 > 32 ? 64 : 32, ty = 256 / tx;
  const int64_t gx = ceil_div<int64_t>(h2, tx);
  const int64_t gy = S < 65535 ? S : 65535;
  int64_t gz = ceil_div<int64_t>(BH, int64_t(ty) * kHeadsPerThread);
  if (gz > 65535) gz = 65535;
  const dim3 grid{unsigned(gx), unsigned(gy), unsigned(gz)}, block{tx, ty};
  FreqTable table{};
  if (p.freqs.size() == 0) {
    rope_kernel<T, false><<<grid, block, 0, stream_of(L)>>>(out, x, S, BH, H, D, p.position, position_dev,
                                                            double(p.theta), double(p.scale), table, positions);
  } else {
    for (size_t i = 0; i < p.freqs.size(); i++) table.f[i] = p.freqs.data()[i];  // <= kRopeMaxFreqs (infer)
    rope_kernel<T, true><<<grid, block, 0, stream_of(L)>>>(out, x, S, BH, H, D, p.position, position_dev,
                                                           double(p.theta), double(p.scale), table, positions);
  }
  check_launch("rope_kernel");
}

}  // namespace

void rope(const Launch& L, const Tensor& out, const Tensor& x, const RopeParams& p, const int64_t* position_dev,
          const Tensor* positions) {
  if (x.numel() == 0) return;
  dispatch_float(x.dtype, "rope", [&](auto tag) {
    using T = decltype(tag);
    rope_cuda<T>(L, out.data<T>(), x.data<T>(), x.dim(0), x.dim(1), x.dim(2), x.dim(3), p, position_dev,
                 positions ? positions->data<int32_t>() : nullptr);
  });
}

}  // namespace ignis::cuda
