// matmul_q on CUDA (cpu::matmul_q semantics): x @ the int8 weight q [N, K] i8 with scales
// [N, K / group] f32 (core/quant.h), transposed. It never makes a float copy of the weight:
//   M <= 8 (decode), group % 16 == 0, q 16-byte aligned: matmul_q_gemv_kernel. Each weight byte
//     is read once as a 16-byte pack; a warp owns 4 rows and WK warps may split K (WK grows
//     until every SM has a block); x [M, K tile] sits in shared memory as f32; int8 -> f32 in
//     registers (prmt); per 16-pack: sum x * q, times the pack's group scale.
//   M <= 8 otherwise (group % 16 != 0 or misaligned q): matmul_q_gemv_scalar_kernel, a warp per
//     row, byte loads.
//   M > 8, f16/bf16, group % 16 == 0: matmul_q_gemm_mma_kernel. 64x64x64 tiles, q stored in
//     shared memory as exact f16/bf16 integers, mma.sync m16n8k16 into per-group f32 partials
//     that are scaled into the totals at each group's end (the CPU's order: group sum, then scale).
//   M > 8 otherwise (f32, or group % 16 != 0): matmul_q_gemm_simt_kernel. 64x64x16 f32 tiles,
//     the weight dequantized to f32 in shared memory exactly as the CPU's packer (q * scale).
//   K == 0: matmul_q_empty_kernel, out = act(bias or 0).
#include "quant.cuh"

namespace ignis::cuda {
namespace {

using namespace quant;

// ---- matmul_q epilogue and K == 0 ----

template <class T>
__device__ __forceinline__ T epilogue(float v, const T* bias, int64_t n, Activation act) {
  if (bias) v += to_f32(bias[n]);
  return from_f32<T>(apply_activation(act, v));
}

template <class T>
__global__ void matmul_q_empty_kernel(T* out, const T* bias, int64_t total, int64_t N, Activation act) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    out[i] = epilogue<T>(0.f, bias, i % N, act);
}

// ---- GEMV (M <= 8), fast path ----
// Block: 8 warps = WR row groups x WK K-splits (WK = 1 << wk_log2). Warp (wr, wk) owns rows
// [row0, row0 + R) with row0 = blockIdx.x * WR * R + wr * R and, of each K tile, the 16-byte
// chunks c = tg + TG * (u + U * j) (tg = wk * 32 + lane, TG = WK * 32). Per K tile [kc0, kc0 + kcw):
//   xs = x [M, kcw] as f32, laid out [m][quad i][chunk c] (float4) so a warp's 32 chunks are 32
//   consecutive float4 (no bank conflicts);
//   per chunk and row: d = sum_16 x * q, tot += d * scale[row, group of chunk] (M > 4:
//   tot += sum_16 x * (q * scale)).
// The first batch of weight loads is issued before the tile's x is staged. At the end tot is
// reduced over the warp (shuffles) and over WK (shared memory), then bias + act.

constexpr int kGemvThreads = 256;
constexpr int kGemvWarps = kGemvThreads / kWarp;
constexpr int kGemvRows = 4;             // R: rows a warp owns
constexpr int kGemvSmemFloats = 12032;   // xs budget: M * KC floats (47 KB; red takes <= 1 KB)

// KC: the K tile for M rows, a multiple of 512 (16 chunks x 32 lanes).
constexpr int gemv_kc(int M) { return kGemvSmemFloats / M / 512 * 512; }

template <class T, int M>
__global__ void __launch_bounds__(kGemvThreads, 2)
    matmul_q_gemv_kernel(T* __restrict__ out, const T* __restrict__ x, const int8_t* __restrict__ q,
                         const float* __restrict__ scales, const T* __restrict__ bias, int N, int K, int cpg,
                         int cpg_shift, int kc, int wk_log2, bool xvec, Activation act) {
  constexpr int R = kGemvRows;
  constexpr int U = M <= 4 ? 2 : 1;  // chunks per row in flight: R * U 16-byte loads a thread
  // M > 4: q * scale per element, accumulated straight into tot (the registers of a separate
  // chunk sum d [R][M] would spill).
  constexpr bool kPrescale = M > 4;
  extern __shared__ float4 gemv_xs[];  // [M][4][cks]
  __shared__ float red[kGemvWarps][R * M];

  const int lane = int(threadIdx.x % kWarp), warp = int(threadIdx.x / kWarp);
  const int WK = 1 << wk_log2, WR = kGemvWarps >> wk_log2;
  const int wk = warp & (WK - 1), wr = warp >> wk_log2;
  const int tg = wk * kWarp + lane, TG = WK * kWarp;
  const int row0 = int(blockIdx.x) * WR * R + wr * R;
  const int G = K / (16 * cpg);
  const int cks = min(kc, K) / 16;  // chunk capacity of xs

  const int8_t* qr[R];  // rows past N read row N - 1 and are not stored
  const float* sr[R];
#pragma unroll
  for (int r = 0; r < R; r++) {
    const int64_t n = min(row0 + r, N - 1);
    qr[r] = q + n * K;
    sr[r] = scales + n * G;
  }

  float tot[R][M];
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int m = 0; m < M; m++) tot[r][m] = 0.f;

  Pack16 w[U][R];
  float s[U][R];
#pragma unroll 1
  for (int kc0 = 0; kc0 < K; kc0 += kc) {
    const int ck = min(kc, K - kc0) / 16, cbase = kc0 / 16;
    const int nb = ceil_div(ck, TG * U);

    auto load_batch = [&](int j) {
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int c = tg + TG * (u + U * j);
        if (c < ck) {
          const int cg = cbase + c;
          const int g = cpg_shift >= 0 ? cg >> cpg_shift : cg / cpg;
#pragma unroll
          for (int r = 0; r < R; r++) {
            const int4 v = __ldcs(reinterpret_cast<const int4*>(qr[r] + 16 * int64_t(cg)));
            w[u][r].w[0] = uint32_t(v.x), w[u][r].w[1] = uint32_t(v.y);
            w[u][r].w[2] = uint32_t(v.z), w[u][r].w[3] = uint32_t(v.w);
            s[u][r] = __ldg(sr[r] + g);
          }
        }
      }
    };
    load_batch(0);

    // xs = x [:, kc0 : kc0 + 16 ck] as f32
    __syncthreads();  // the previous tile's readers are done
#pragma unroll
    for (int m = 0; m < M; m++) {
      const T* xm = x + int64_t(m) * K + kc0;
#pragma unroll 2
      for (int kq = int(threadIdx.x); kq < 4 * ck; kq += kGemvThreads)
        gemv_xs[(m * 4 + (kq & 3)) * cks + (kq >> 2)] = load_quad(xm + 4 * kq, xvec);
    }
    __syncthreads();

#pragma unroll 1
    for (int j = 0;;) {
#pragma unroll
      for (int u = 0; u < U; u++) {
        const int c = tg + TG * (u + U * j);
        if (c < ck) {
          // d = sum over the chunk's 16 k of x * q (kPrescale: d is tot, q already scaled)
          float d[R][M];
#pragma unroll
          for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < M; m++) d[r][m] = kPrescale ? tot[r][m] : 0.f;
#pragma unroll
          for (int i = 0; i < 4; i++) {  // k = 16 c + 4 i + e
            float f[R][4];
#pragma unroll
            for (int r = 0; r < R; r++) {
              i8x4_to_f32(w[u][r].w[i], f[r]);
              if constexpr (kPrescale)
#pragma unroll
                for (int e = 0; e < 4; e++) f[r][e] = __fmul_rn(f[r][e], s[u][r]);
            }
#pragma unroll
            for (int m = 0; m < M; m++) {
              const float4 xv = gemv_xs[(m * 4 + i) * cks + c];
#pragma unroll
              for (int r = 0; r < R; r++) {
                d[r][m] = fmaf(xv.x, f[r][0], d[r][m]);
                d[r][m] = fmaf(xv.y, f[r][1], d[r][m]);
                d[r][m] = fmaf(xv.z, f[r][2], d[r][m]);
                d[r][m] = fmaf(xv.w, f[r][3], d[r][m]);
              }
            }
          }
#pragma unroll
          for (int r = 0; r < R; r++)
#pragma unroll
            for (int m = 0; m < M; m++) tot[r][m] = kPrescale ? d[r][m] : fmaf(d[r][m], s[u][r], tot[r][m]);
        }
      }
      if (++j >= nb) break;
      load_batch(j);
    }
  }

  // tot over the warp, then over the WK warps of the row group
#pragma unroll
  for (int r = 0; r < R; r++)
#pragma unroll
    for (int m = 0; m < M; m++) tot[r][m] = warp_sum(tot[r][m]);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
      for (int m = 0; m < M; m++) red[warp][r * M + m] = tot[r][m];
  }
  __syncthreads();
  const int t = int(threadIdx.x);
  if (t < WR * R * M) {
    const int g = t / (R * M), rm = t % (R * M);
    float v = 0.f;
    for (int k = 0; k < WK; k++) v += red[g * WK + k][rm];
    const int n = int(blockIdx.x) * WR * R + g * R + rm / M, m = rm % M;
    if (n < N) out[int64_t(m) * N + n] = epilogue<T>(v, bias, n, act);
  }
}

template <class T, int M>
void matmul_q_gemv_m(T* out, const T* x, const int8_t* q, const float* scales, const T* bias, int N, int K,
                     int group, Activation act, int sm_count, cudaStream_t st) {
  const int cpg = group / 16;
  int cpg_shift = -1;
  if ((cpg & (cpg - 1)) == 0)
    for (cpg_shift = 0; (1 << cpg_shift) < cpg; cpg_shift++) {
    }
  int wk_log2 = 0;  // split K over warps until every SM has a block
  while (wk_log2 < 3 && ceil_div(N, (kGemvWarps >> wk_log2) * kGemvRows) < sm_count) wk_log2++;
  const int rows_block = (kGemvWarps >> wk_log2) * kGemvRows;
  const int kc = gemv_kc(M);
  const size_t smem = size_t(M) * 4 * size_t(std::min(kc, K) / 16) * sizeof(float4);  // [M][4][cks]
  const bool xvec = (reinterpret_cast<uintptr_t>(x) & (4 * sizeof(T) - 1)) == 0;
  matmul_q_gemv_kernel<T, M><<<unsigned(ceil_div(N, rows_block)), kGemvThreads, smem, st>>>(
      out, x, q, scales, bias, N, K, cpg, cpg_shift, kc, wk_log2, xvec, act);
  check_launch("matmul_q_gemv_kernel");
}

// ---- GEMV (M <= 8), any group and alignment: a warp per row, out = x . (q * scale) ----

template <class T>
__global__ void __launch_bounds__(256) matmul_q_gemv_scalar_kernel(T* out, const T* x, const int8_t* q,
                                                                   const float* scales, const T* bias, int M, int N,
                                                                   int K, int group, Activation act) {
  const int n = int(blockIdx.x) * 8 + int(threadIdx.x / kWarp), lane = int(threadIdx.x % kWarp);
  if (n >= N) return;  // the whole warp
  const int8_t* qn = q + int64_t(n) * K;            // [K]
  const float* sn = scales + int64_t(n) * (K / group);  // [G]
  float acc[8] = {};
  for (int k = lane; k < K; k += kWarp) {
    const float wv = __fmul_rn(float(qn[k]), sn[k / group]);
#pragma unroll
    for (int m = 0; m < 8; m++)
      if (m < M) acc[m] = fmaf(to_f32(x[int64_t(m) * K + k]), wv, acc[m]);
  }
#pragma unroll
  for (int m = 0; m < 8; m++) {
    if (m >= M) break;
    const float v = warp_sum(acc[m]);
    if (lane == 0) out[int64_t(m) * N + n] = epilogue<T>(v, bias, n, act);
  }
}

// ---- GEMM (M > 8), f16/bf16: mma.sync m16n8k16 ----
// Block tile 64 (M) x 64 (N) x 64 (K), 4 warps as 2 x 2, each 32 x 32 (2 m16 x 4 n8 mma tiles).
// Shared, double-buffered: xs [64 m][72] and ws [64 n][72] (16-bit, rows padded to 144 B: the
// ldmatrix rows of 8 lanes fall in distinct banks), ss [4 k16 steps][64 n] = the scale of the
// group each k16 step lies in. Tile kt + 1 is loaded into registers while tile kt is multiplied,
// then stored to the other buffer (one barrier per tile). Per k16 step: part += x q^T; at a
// group's end tot += part * scale[n], part = 0.

constexpr int kMmaBM = 64, kMmaBN = 64, kMmaBK = 64, kMmaLd = kMmaBK + 8, kMmaThreads = 128;

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  const uint32_t a = uint32_t(__cvta_generic_to_shared(p));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}

// c [16 x 8] += a [16 x 16] b [16 x 8], f32 accumulators.
template <class T>
__device__ __forceinline__ void mma_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

template <class T>
__global__ void __launch_bounds__(kMmaThreads)
    matmul_q_gemm_mma_kernel(T* __restrict__ out, const T* __restrict__ x, const int8_t* __restrict__ q,
                             const float* __restrict__ scales, const T* __restrict__ bias, int M, int N, int K,
                             int group, int mtiles, bool xvec, bool qvec, Activation act) {
  __shared__ alignas(16) uint16_t xs[2][kMmaBM][kMmaLd];
  __shared__ alignas(16) uint16_t ws[2][kMmaBN][kMmaLd];
  __shared__ float ss[2][kMmaBK / 16][kMmaBN];

  const int tid = int(threadIdx.x), lane = tid % kWarp, warp = tid / kWarp;
  const int wm = warp >> 1, wn = warp & 1;
  const int m0 = int(blockIdx.x % unsigned(mtiles)) * kMmaBM, n0 = int(blockIdx.x / unsigned(mtiles)) * kMmaBN;
  const int G = K / group, nk = ceil_div(K, kMmaBK);

  // This thread's share of a tile: x chunks of 8 (4), q chunks of 16 (2), scales (2).
  Pack16 xr[4], qw[2];
  float sv[2];
  auto load_tile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int id = tid + kMmaThreads * i, r = id >> 3, gm = m0 + r, gk = k0 + (id & 7) * 8;
      const T* p = x + int64_t(gm) * K + gk;
      if (xvec) {  // K % 8 == 0: a chunk is all in or all out
        xr[i] = gm < M && gk < K ? load16(p) : Pack16{};
      } else {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const uint32_t lo = gm < M && gk + 2 * e < K ? bits16(p[2 * e]) : 0u;
          const uint32_t hi = gm < M && gk + 2 * e + 1 < K ? bits16(p[2 * e + 1]) : 0u;
          xr[i].w[e] = lo | hi << 16;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int id = tid + kMmaThreads * i, r = id >> 2, gn = n0 + r, gk = k0 + (id & 3) * 16;
      const int8_t* p = q + int64_t(gn) * K + gk;
      if (gn < N && gk < K) {  // K % 16 == 0 here
        if (qvec) {
          qw[i] = load16(p);
        } else {
#pragma unroll
          for (int e = 0; e < 4; e++)
            qw[i].w[e] = uint32_t(uint8_t(p[4 * e])) | uint32_t(uint8_t(p[4 * e + 1])) << 8 |
                         uint32_t(uint8_t(p[4 * e + 2])) << 16 | uint32_t(uint8_t(p[4 * e + 3])) << 24;
        }
      } else {
        qw[i] = Pack16{};
      }
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int id = tid + kMmaThreads * i, step = id >> 6, gn = n0 + (id & 63), gk = k0 + 16 * step;
      sv[i] = gn < N && gk < K ? scales[int64_t(gn) * G + gk / group] : 0.f;
    }
  };
  auto store_tile = [&](int b) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int id = tid + kMmaThreads * i;
      store16(&xs[b][id >> 3][(id & 7) * 8], xr[i]);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int id = tid + kMmaThreads * i;
      Pack16 lo, hi;  // q as exact 16-bit floats: k 0-7, 8-15 of the chunk
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float f[4];
        i8x4_to_f32(qw[i].w[e], f);
        Pack16& d = e < 2 ? lo : hi;
        d.w[(e & 1) * 2] = pack2<T>(f[0], f[1]);
        d.w[(e & 1) * 2 + 1] = pack2<T>(f[2], f[3]);
      }
      store16(&ws[b][id >> 2][(id & 3) * 16], lo);
      store16(&ws[b][id >> 2][(id & 3) * 16 + 8], hi);
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const int id = tid + kMmaThreads * i;
      ss[b][id >> 6][id & 63] = sv[i];
    }
  };

  float tot[2][4][4], part[2][4][4];  // [m16 tile][n8 tile][mma C fragment]
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int c = 0; c < 4; c++) tot[i][j][c] = part[i][j][c] = 0.f;

  load_tile(0);
  store_tile(0);
  __syncthreads();
  for (int kt = 0; kt < nk; kt++) {
    const int b = kt & 1, k0 = kt * kMmaBK;
    if (kt + 1 < nk) load_tile(k0 + kMmaBK);
#pragma unroll
    for (int step = 0; step < kMmaBK / 16; step++) {
      const int k = k0 + 16 * step;
      if (k >= K) break;
      uint32_t a[2][4], bq[2][4];
#pragma unroll
      for (int i = 0; i < 2; i++)  // x rows wm*32 + i*16 + [0, 16), k [k, k + 16)
        ldmatrix_x4(a[i], &xs[b][wm * 32 + i * 16 + (lane & 15)][16 * step + (lane >> 4) * 8]);
#pragma unroll
      for (int jp = 0; jp < 2; jp++) {  // q rows wn*32 + jp*16 + [0, 16): n8 tiles 2 jp, 2 jp + 1
        const int r = wn * 32 + jp * 16 + (lane & 7) + (lane >> 4) * 8;
        ldmatrix_x4(bq[jp], &ws[b][r][16 * step + ((lane >> 3) & 1) * 8]);
      }
#pragma unroll
      for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
          mma_16816<T>(part[i][j], a[i], bq[j >> 1][(j & 1) * 2], bq[j >> 1][(j & 1) * 2 + 1]);
      if ((k + 16) % group == 0) {  // the group ends: tot += part * scale[n]
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int nl = wn * 32 + j * 8 + (lane & 3) * 2;
          const float s0 = ss[b][step][nl], s1 = ss[b][step][nl + 1];
#pragma unroll
          for (int i = 0; i < 2; i++) {
            tot[i][j][0] = fmaf(part[i][j][0], s0, tot[i][j][0]);
            tot[i][j][1] = fmaf(part[i][j][1], s1, tot[i][j][1]);
            tot[i][j][2] = fmaf(part[i][j][2], s0, tot[i][j][2]);
            tot[i][j][3] = fmaf(part[i][j][3], s1, tot[i][j][3]);
#pragma unroll
            for (int c = 0; c < 4; c++) part[i][j][c] = 0.f;
          }
        }
      }
    }
    if (kt + 1 < nk) store_tile(b ^ 1);
    __syncthreads();
  }

  // C fragment: c0, c1 at (row lane/4, cols 2 (lane%4) + 0, 1); c2, c3 at row lane/4 + 8.
#pragma unroll
  for (int i = 0; i < 2; i++)
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int c = 0; c < 4; c++) {
        const int m = m0 + wm * 32 + i * 16 + (lane >> 2) + (c >> 1) * 8;
        const int n = n0 + wn * 32 + j * 8 + (lane & 3) * 2 + (c & 1);
        if (m < M && n < N) out[int64_t(m) * N + n] = epilogue<T>(tot[i][j][c], bias, n, act);
      }
}

// ---- GEMM (M > 8), f32 or any group: SIMT ----
// Block tile 64 (M) x 64 (N) x 16 (K), 256 threads of 4 x 4 outputs (rows ty*4 + i, cols
// tx*4 + j). Shared, double-buffered and k-major: xs [16 k][64 m] = x, ws [16 k][64 n] =
// float(q) * scale (the CPU packer's values). Same register prefetch scheme as the mma kernel.

constexpr int kSimtBM = 64, kSimtBN = 64, kSimtBK = 16, kSimtThreads = 256;

template <class T>
__global__ void __launch_bounds__(kSimtThreads)
    matmul_q_gemm_simt_kernel(T* __restrict__ out, const T* __restrict__ x, const int8_t* __restrict__ q,
                              const float* __restrict__ scales, const T* __restrict__ bias, int M, int N, int K,
                              int group, int mtiles, Activation act) {
  __shared__ alignas(16) float xs[2][kSimtBK][kSimtBM + 4];
  __shared__ alignas(16) float ws[2][kSimtBK][kSimtBN + 4];

  const int tid = int(threadIdx.x), ty = tid / 16, tx = tid % 16;
  const int m0 = int(blockIdx.x % unsigned(mtiles)) * kSimtBM, n0 = int(blockIdx.x / unsigned(mtiles)) * kSimtBN;
  const int G = K / group, nk = ceil_div(K, kSimtBK);

  float xv[4], wv[4];  // element id = tid + 256 i: row id / 16, k id % 16
  auto load_tile = [&](int k0) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int id = tid + kSimtThreads * i, r = id >> 4, gk = k0 + (id & 15);
      const int gm = m0 + r, gn = n0 + r;
      xv[i] = gm < M && gk < K ? to_f32(x[int64_t(gm) * K + gk]) : 0.f;
      wv[i] = gn < N && gk < K ? __fmul_rn(float(q[int64_t(gn) * K + gk]), scales[int64_t(gn) * G + gk / group])
                               : 0.f;
    }
  };
  auto store_tile = [&](int b) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const int id = tid + kSimtThreads * i;
      xs[b][id & 15][id >> 4] = xv[i];
      ws[b][id & 15][id >> 4] = wv[i];
    }
  };

  float acc[4][4] = {};
  load_tile(0);
  store_tile(0);
  __syncthreads();
  for (int kt = 0; kt < nk; kt++) {
    const int b = kt & 1;
    if (kt + 1 < nk) load_tile((kt + 1) * kSimtBK);
#pragma unroll
    for (int k = 0; k < kSimtBK; k++) {
      const float4 a = *reinterpret_cast<const float4*>(&xs[b][k][ty * 4]);
      const float4 w = *reinterpret_cast<const float4*>(&ws[b][k][tx * 4]);
      const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if (kt + 1 < nk) store_tile(b ^ 1);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; i++)
#pragma unroll
    for (int j = 0; j < 4; j++) {
      const int m = m0 + ty * 4 + i, n = n0 + tx * 4 + j;
      if (m < M && n < N) out[int64_t(m) * N + n] = epilogue<T>(acc[i][j], bias, n, act);
    }
}

template <class T>
void matmul_q_cuda(const Launch& L, T* out, const T* x, const int8_t* q, const float* scales, const T* bias, int M,
                   int N, int K, int group, Activation act) {
  const cudaStream_t st = stream_of(L);
  if (M <= 8) {
    if (group % 16 == 0 && aligned16(q)) {
      const int sm = L.sm_count > 0 ? L.sm_count : 108;
      switch (M) {
        case 1: matmul_q_gemv_m<T, 1>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 2: matmul_q_gemv_m<T, 2>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 3: matmul_q_gemv_m<T, 3>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 4: matmul_q_gemv_m<T, 4>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 5: matmul_q_gemv_m<T, 5>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 6: matmul_q_gemv_m<T, 6>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        case 7: matmul_q_gemv_m<T, 7>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
        default: matmul_q_gemv_m<T, 8>(out, x, q, scales, bias, N, K, group, act, sm, st); return;
      }
    }
    matmul_q_gemv_scalar_kernel<T><<<unsigned(ceil_div(N, 8)), 256, 0, st>>>(out, x, q, scales, bias, M, N, K,
                                                                            group, act);
    check_launch("matmul_q_gemv_scalar_kernel");
    return;
  }
  if constexpr (!std::is_same_v<T, float>) {
    if (group % 16 == 0) {
      const int mtiles = ceil_div(M, kMmaBM);
      const int64_t blocks = int64_t(mtiles) * ceil_div(N, kMmaBN);
      if (blocks > INT_MAX) fail(ErrorCode::Shape, "matmul: the product is too large for one CUDA launch");
      const bool xvec = aligned16(x), qvec = aligned16(q);  // K % 16 == 0 since group divides it
      matmul_q_gemm_mma_kernel<T><<<unsigned(blocks), kMmaThreads, 0, st>>>(out, x, q, scales, bias, M, N, K, group,
                                                                            mtiles, xvec, qvec, act);
      check_launch("matmul_q_gemm_mma_kernel");
      return;
    }
  }
  const int mtiles = ceil_div(M, kSimtBM);
  const int64_t blocks = int64_t(mtiles) * ceil_div(N, kSimtBN);
  if (blocks > INT_MAX) fail(ErrorCode::Shape, "matmul: the product is too large for one CUDA launch");
  matmul_q_gemm_simt_kernel<T><<<unsigned(blocks), kSimtThreads, 0, st>>>(out, x, q, scales, bias, M, N, K, group,
                                                                          mtiles, act);
  check_launch("matmul_q_gemm_simt_kernel");
}

}  // namespace

void matmul_q(const Launch& L, const Tensor& out, const Tensor& x, const Tensor& q, const Tensor& scales,
              int64_t group, const Tensor* bias, Activation act) {
  const int64_t K = x.dim(-1), N = q.dim(0);
  if (out.numel() == 0) return;
  const int64_t M = K ? x.numel() / K : out.numel() / N;
  dispatch_float(out.dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    T* o = static_cast<T*>(out.raw());
    const T* b = bias ? static_cast<const T*>(bias->raw()) : nullptr;
    if (K == 0) {  // empty sum: out = act(bias or 0)
      const int64_t total = M * N;
      matmul_q_empty_kernel<T><<<unsigned(std::min<int64_t>(ceil_div<int64_t>(total, 256), 65536)), 256, 0,
                                 stream_of(L)>>>(o, b, total, N, act);
      check_launch("matmul_q_empty_kernel");
      return;
    }
    quant::check_int("matmul", M, "M");
    quant::check_int("matmul", N, "N");
    quant::check_int("matmul", K, "K");
    matmul_q_cuda<T>(L, o, static_cast<const T*>(x.raw()), q.data<int8_t>(), scales.data<float>(), b, int(M), int(N),
                     int(K), int(group), act);
  });
}

}  // namespace ignis::cuda
