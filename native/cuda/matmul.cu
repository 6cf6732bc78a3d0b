// matmul on CUDA: out [batch..., M, N] = act(a [batchA..., M, K] @ b [batchB..., K, N] + bias [N])
// (b [batchB..., N, K] with transpose_b; batch dims broadcast numpy-style), as cpu::matmul.
//  - f16/bf16, M > 8: tensor cores (mma.sync m16n8k16, f32 accumulators), ldmatrix from padded
//    shared memory, a 4-stage cp.async pipeline; a variant loading element by element when K (or
//    N for b [K, N]) is not a multiple of 8 or a base is not 16-byte aligned.
//  - f32, M > 8: SIMT FP32 FMA (128x128 tile, 8x8 per thread). Not TF32: its 10-bit mantissas
//    miss the ~1e-5 relative error f32 is held to, and 3xTF32 still drops a_small b_small and
//    accumulates with the tensor core's truncation; plain FMA keeps f32 exactly as the CPU does.
//  - M <= 8 (decode), every dtype: GEMV kernels that stream B once with 16-byte loads.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <type_traits>

#include "../core/activation.h"
#include "common.cuh"

namespace ignis::cuda {
namespace {

// --- batches -------------------------------------------------------------------------------------

constexpr int kMaxBatchDims = 6;        // rank <= 8
constexpr int64_t kMaxGridYZ = 65535;   // gridDim.y / gridDim.z limit: batches go in launches of this

// Element offsets of a's and b's matrices for out's batch index i: out's batch dims right-aligned
// in size (1 where unused), stride 0 where that operand broadcasts.
struct BatchMap {
  int64_t size[kMaxBatchDims];
  int64_t a_stride[kMaxBatchDims];
  int64_t b_stride[kMaxBatchDims];
};

__device__ __forceinline__ void batch_offsets(const BatchMap& m, int64_t i, int64_t& ao, int64_t& bo) {
  ao = 0;
  bo = 0;
#pragma unroll
  for (int d = kMaxBatchDims - 1; d >= 0; d--) {
    if (m.size[d] == 1) continue;
    const int64_t idx = i % m.size[d];
    i /= m.size[d];
    ao += idx * m.a_stride[d];
    bo += idx * m.b_stride[d];
  }
}

template <class T>
struct MatmulArgs {
  const T* a;      // [batchA..., M, K]
  const T* b;      // [batchB..., K, N], or [batchB..., N, K] (transpose_b)
  const T* bias;   // [N] or null
  T* out;          // [nbatch, M, N]
  int M, N, K;
  int64_t nbatch;  // matrices in out
  int64_t batch0;  // out's batch index of this launch's first block row (grid y/z <= 65535)
  BatchMap batch;
  Activation act;
  bool out_vec;    // out rows take 2-element (f16/bf16) or 4-element (f32) stores
};

// a's and b's matrices for out's batch index bi.
template <class T>
__device__ __forceinline__ void batch_operands(const MatmulArgs<T>& p, int64_t bi, const T*& a, const T*& b) {
  int64_t ao, bo;
  batch_offsets(p.batch, bi, ao, bo);
  a = p.a + ao;
  b = p.b + bo;
}

template <class Fn>
void for_batch_chunks(int64_t nbatch, Fn&& fn) {
  for (int64_t b0 = 0; b0 < nbatch; b0 += kMaxGridYZ) fn(b0, unsigned(std::min(kMaxGridYZ, nbatch - b0)));
}

// act(v + bias[col]) in f32: the epilogue of every path, rounded once to the storage type after.
template <class T>
__device__ __forceinline__ float epilogue(float v, const T* bias, int col, Activation act) {
  if (bias) v += to_f32(bias[col]);
  return apply_activation(act, v);
}

// --- PTX: cp.async, ldmatrix, mma ----------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared (L2 only); valid false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}
// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, r[i] gets its
// element (lane / 4, 2 (lane % 4) + {0, 1}) (.trans: (2 (lane % 4) + {0, 1}, lane / 4)).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
// c [16x8] += a [16x16] b [16x8], f32 accumulators.
__device__ __forceinline__ void mma_16816(__nv_bfloat16, float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma_16816(__half, float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ void store2(__half* p, float x, float y) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(x, y);
}
__device__ __forceinline__ void store2(__nv_bfloat16* p, float x, float y) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}

// Block order: tile t walks down groups of 8 M-tiles column by column, so the blocks running
// at once share their B columns and a few A rows in L2.
__device__ __forceinline__ void tile_coords(int t, int tiles_m, int tiles_n, int& tm, int& tn) {
  constexpr int kGroup = 8;
  const int per_group = kGroup * tiles_n;
  const int group = t / per_group, first_m = group * kGroup;
  const int rows = min(tiles_m - first_m, kGroup);
  const int r = t - group * per_group;
  tm = first_m + r % rows;
  tn = r / rows;
}

// The first row m0 and column n0 of this block's BM x BN tile of out [M, N] (grid x: the tiles,
// in tile_coords' order).
__device__ __forceinline__ void tile_origin(int M, int N, int BM, int BN, int& m0, int& n0) {
  int tm, tn;
  tile_coords(int(blockIdx.x), ceil_div(M, BM), ceil_div(N, BN), tm, tn);
  m0 = tm * BM;
  n0 = tn * BN;
}

// --- f16/bf16: tensor cores ----------------------------------------------------------------------

// A BM x BN tile of C per block, BK of K per pipeline stage, WARPS_M x WARPS_N warps each owning
// a WM x WN sub-tile (MT x NT mma tiles of 16x8).
template <int BM_, int BN_, int BK_, int WARPS_M, int WARPS_N, int STAGES_, int MIN_BLOCKS_>
struct MmaTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, STAGES = STAGES_, MIN_BLOCKS = MIN_BLOCKS_;
  static constexpr int WARPS_N_ = WARPS_N;
  static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MT = WM / 16, NT = WN / 8;
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 16 == 0, "warp tiles are whole ldmatrix.x4 loads");
};
using TileL = MmaTile<128, 256, 32, 2, 4, 4, 1>;  // 8 warps of 64x64: big products
using TileM = MmaTile<128, 128, 32, 2, 4, 4, 2>;  // 8 warps of 64x32
using TileS = MmaTile<64, 64, 32, 2, 2, 4, 4>;    // 4 warps of 32x32: products too small to fill the GPU otherwise

// One stage in shared memory: A [BM][BK + 8], B [BK][BN + 8] (b [K, N]) or [BN][BK + 8]
// (b [N, K]). The 16-byte pad puts the 8 rows one ldmatrix phase reads in distinct bank groups.
template <class Cfg, bool kTrans>
struct MmaSmem {
  static constexpr int kPad = 8;
  static constexpr int A_PITCH = Cfg::BK + kPad;
  static constexpr int B_PITCH = kTrans ? Cfg::BK + kPad : Cfg::BN + kPad;
  static constexpr int A_STAGE = Cfg::BM * A_PITCH;
  static constexpr int B_STAGE = (kTrans ? Cfg::BN : Cfg::BK) * B_PITCH;
  static constexpr size_t BYTES = size_t(Cfg::STAGES) * (A_STAGE + B_STAGE) * 2;
};

// C[m, n] = sum_k A[m, k] B[k, n] for one BM x BN tile, then out = act(C + bias) (T = f16/bf16).
// Per k-tile of BK: A [BM, BK] and B [BK, BN] (or [BN, BK]) land in stage kt % STAGES by cp.async
// (kVec: 16-byte chunks, zero-filled past M/N/K) or element by element (!kVec), STAGES - 1 tiles
// ahead of the math; each warp then runs, per k16 step, MT x NT mma: C[16x8] += A[16x16] B[16x8],
// fragments by ldmatrix (B [K, N] through .trans). Grid: (tiles, 1, batches), tiles ordered by
// tile_coords.
template <class T, class Cfg, bool kTrans, bool kVec>
__global__ void __launch_bounds__(Cfg::THREADS, Cfg::MIN_BLOCKS) matmul_mma_kernel(const MatmulArgs<T> p) {
  using S = MmaSmem<Cfg, kTrans>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, STAGES = Cfg::STAGES, THREADS = Cfg::THREADS;
  constexpr int MT = Cfg::MT, NT = Cfg::NT;
  extern __shared__ __align__(16) unsigned char smem[];
  T* As = reinterpret_cast<T*>(smem);   // [STAGES][A_STAGE]
  T* Bs = As + STAGES * S::A_STAGE;     // [STAGES][B_STAGE]

  const int M = p.M, N = p.N, K = p.K;
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp / Cfg::WARPS_N_) * Cfg::WM, wn0 = (warp % Cfg::WARPS_N_) * Cfg::WN;
  int bm0, bn0;
  tile_origin(M, N, BM, BN, bm0, bn0);
  const int64_t bi = p.batch0 + blockIdx.z;
  const T *a, *b;
  batch_operands(p, bi, a, b);
  T* out = p.out + bi * int64_t(M) * N;

  // kVec: this thread's 16-byte chunks. A chunk j: row a_row0 + j * A_RSTEP, columns a_col + [0, 8);
  // B chunk j: row b_row0 + j * B_RSTEP of the [BK][BN] (or [BN][BK]) tile, columns b_col + [0, 8).
  constexpr int A_CPR = BK / 8, A_ITERS = BM * A_CPR / THREADS, A_RSTEP = THREADS / A_CPR;
  constexpr int B_CPR = (kTrans ? BK : BN) / 8, B_ITERS = (kTrans ? BN : BK) * B_CPR / THREADS;
  constexpr int B_RSTEP = THREADS / B_CPR;
  static_assert(BM * A_CPR % THREADS == 0 && THREADS % A_CPR == 0, "A chunks split evenly");
  static_assert((kTrans ? BN : BK) * B_CPR % THREADS == 0 && THREADS % B_CPR == 0, "B chunks split evenly");
  const int a_row0 = tid / A_CPR, a_col = (tid % A_CPR) * 8;
  const int b_row0 = tid / B_CPR, b_col = (tid % B_CPR) * 8;
  const T* a_src[A_ITERS];
  bool a_ok[A_ITERS];
#pragma unroll
  for (int j = 0; j < A_ITERS; j++) {
    const int gm = bm0 + a_row0 + j * A_RSTEP;
    a_ok[j] = gm < M;
    a_src[j] = a + int64_t(a_ok[j] ? gm : 0) * K + a_col;
  }
  const T* b_src[B_ITERS];
  bool b_ok[B_ITERS];
#pragma unroll
  for (int j = 0; j < B_ITERS; j++) {
    if constexpr (kTrans) {  // row n of b [N, K]
      const int gn = bn0 + b_row0 + j * B_RSTEP;
      b_ok[j] = gn < N;
      b_src[j] = b + int64_t(b_ok[j] ? gn : 0) * K + b_col;
    } else {  // row k (from the tile's k0) of b [K, N], columns bn0 + b_col + [0, 8)
      const int gn = bn0 + b_col;
      b_ok[j] = gn < N;
      b_src[j] = b + int64_t(b_row0 + j * B_RSTEP) * N + (b_ok[j] ? gn : 0);
    }
  }

  // A [bm0 : +BM, k0 : +BK] and B's matching tile -> stage s, zeros past M, N and K.
  auto load_tile = [&](int s, int k0) {
    if constexpr (kVec) {
      const uint32_t as = smem_addr(As + s * S::A_STAGE), bs = smem_addr(Bs + s * S::B_STAGE);
#pragma unroll
      for (int j = 0; j < A_ITERS; j++) {
        const bool v = a_ok[j] && k0 + a_col < K;
        cp_async16(as + ((a_row0 + j * A_RSTEP) * S::A_PITCH + a_col) * 2, v ? a_src[j] + k0 : a, v);
      }
#pragma unroll
      for (int j = 0; j < B_ITERS; j++) {
        const int row = b_row0 + j * B_RSTEP;
        const bool v = kTrans ? b_ok[j] && k0 + b_col < K : b_ok[j] && k0 + row < K;
        const T* src = kTrans ? b_src[j] + k0 : b_src[j] + int64_t(k0) * N;
        cp_async16(bs + (row * S::B_PITCH + b_col) * 2, v ? src : b, v);
      }
    } else {
      const T zero = from_f32<T>(0.f);
      T* as = As + s * S::A_STAGE;
      T* bs = Bs + s * S::B_STAGE;
#pragma unroll 4
      for (int i = tid; i < BM * BK; i += THREADS) {
        const int row = i / BK, col = i % BK, gm = bm0 + row, gk = k0 + col;
        as[row * S::A_PITCH + col] = gm < M && gk < K ? a[int64_t(gm) * K + gk] : zero;
      }
#pragma unroll 4
      for (int i = tid; i < BK * BN; i += THREADS) {
        if constexpr (kTrans) {  // bs [n][k]
          const int row = i / BK, col = i % BK, gn = bn0 + row, gk = k0 + col;
          bs[row * S::B_PITCH + col] = gn < N && gk < K ? b[int64_t(gn) * K + gk] : zero;
        } else {  // bs [k][n]
          const int row = i / BN, col = i % BN, gk = k0 + row, gn = bn0 + col;
          bs[row * S::B_PITCH + col] = gk < K && gn < N ? b[int64_t(gk) * N + gn] : zero;
        }
      }
    }
  };

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; i++)
#pragma unroll
    for (int j = 0; j < NT; j++)
#pragma unroll
      for (int r = 0; r < 4; r++) acc[i][j][r] = 0.f;

  // C[warp tile] += A[warp rows, stage] B[stage, warp columns], k16 step by step.
  auto compute_stage = [&](int s) {
    const uint32_t as = smem_addr(As + s * S::A_STAGE), bs = smem_addr(Bs + s * S::B_STAGE);
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      uint32_t af[MT][4], bf[NT][2];
      // A 16x16 at (wm0 + 16 mt, kk): matrices rows 0-7 / 8-15 x columns 0-7 / 8-15 = a0..a3
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
        ldmatrix_x4(af[mt], as + ((wm0 + mt * 16 + (lane & 15)) * S::A_PITCH + kk + (lane >> 4) * 8) * 2);
      // B 16x16 at (kk, wn0 + 16 n2): matrices k 0-7 / 8-15 of columns 0-7, then of 8-15 =
      // b0, b1 of n-tile 2 n2, then of 2 n2 + 1
#pragma unroll
      for (int n2 = 0; n2 < NT / 2; n2++) {
        uint32_t r[4];
        if constexpr (kTrans)
          ldmatrix_x4(r, bs + ((wn0 + n2 * 16 + ((lane >> 4) << 3) + (lane & 7)) * S::B_PITCH + kk +
                               ((lane >> 3) & 1) * 8) * 2);
        else
          ldmatrix_x4_trans(r, bs + ((kk + (lane & 15)) * S::B_PITCH + wn0 + n2 * 16 + (lane >> 4) * 8) * 2);
        bf[2 * n2][0] = r[0];
        bf[2 * n2][1] = r[1];
        bf[2 * n2 + 1][0] = r[2];
        bf[2 * n2 + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++) mma_16816(T{}, acc[mt][nt], af[mt], bf[nt]);
    }
  };

  // Pipeline: group g of cp.async holds k-tile g (empty past the last), so when k-tile kt is
  // consumed STAGES - 1 + kt groups were committed and at most STAGES - 2 may still be in flight.
  const int ktiles = ceil_div(K, BK);
#pragma unroll
  for (int s = 0; s < STAGES - 1; s++) {
    if (s < ktiles) load_tile(s, s * BK);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; kt++) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // k-tile kt visible to all; every warp is done with stage (kt - 1) % STAGES
    const int next = kt + STAGES - 1;
    if (next < ktiles) load_tile(next % STAGES, next * BK);
    cp_async_commit();
    compute_stage(kt % STAGES);
  }

  // out[m, n] = act(C[m, n] + bias[n]): lane holds C rows g, g + 8 x columns 2 (lane % 4) + {0, 1}
  const int g = lane >> 2, c2 = (lane & 3) * 2;
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int row = bm0 + wm0 + mt * 16 + g + h * 8;
      if (row >= M) continue;
      T* orow = out + int64_t(row) * N;
#pragma unroll
      for (int nt = 0; nt < NT; nt++) {
        const int col = bn0 + wn0 + nt * 8 + c2;
        if (col >= N) continue;
        const float v0 = epilogue(acc[mt][nt][2 * h], p.bias, col, p.act);
        if (col + 1 < N) {
          const float v1 = epilogue(acc[mt][nt][2 * h + 1], p.bias, col + 1, p.act);
          if (p.out_vec) {
            store2(orow + col, v0, v1);
          } else {
            orow[col] = from_f32<T>(v0);
            orow[col + 1] = from_f32<T>(v1);
          }
        } else {
          orow[col] = from_f32<T>(v0);
        }
      }
    }
}

template <class T, class Cfg, bool kTrans, bool kVec>
void matmul_mma_cuda(const Launch& L, MatmulArgs<T> args) {
  constexpr size_t smem = MmaSmem<Cfg, kTrans>::BYTES;
  auto kernel = matmul_mma_kernel<T, Cfg, kTrans, kVec>;
  if constexpr (smem > 48 * 1024) {
    // Opting in to more than 48 KB is per kernel and device: once each (bit d: device d done).
    static std::atomic<uint64_t> opted{0};
    const uint64_t bit = L.device >= 0 && L.device < 64 ? uint64_t(1) << L.device : 0;
    if (!bit || !(opted.load(std::memory_order_acquire) & bit)) {
      IGNIS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      opted.fetch_or(bit, std::memory_order_release);
    }
  }
  const int64_t tiles = int64_t(ceil_div(args.M, Cfg::BM)) * ceil_div(args.N, Cfg::BN);
  if (tiles > INT_MAX) fail(ErrorCode::Shape, "matmul: the output is too large for one CUDA launch");
  for_batch_chunks(args.nbatch, [&](int64_t b0, unsigned nb) {
    args.batch0 = b0;
    kernel<<<dim3(unsigned(tiles), 1, nb), Cfg::THREADS, smem, stream_of(L)>>>(args);
    check_launch("matmul_mma_kernel");
  });
}

// The largest tile that still gives every multiprocessor a block, and fits its shared memory.
template <class T, bool kTrans, bool kVec>
void matmul_mma_pick(const Launch& L, const MatmulArgs<T>& args) {
  auto blocks = [&](int bm, int bn) { return int64_t(ceil_div(args.M, bm)) * ceil_div(args.N, bn) * args.nbatch; };
  if constexpr (kVec) {
    if (MmaSmem<TileL, kTrans>::BYTES <= L.smem_optin && blocks(TileL::BM, TileL::BN) >= L.sm_count)
      return matmul_mma_cuda<T, TileL, kTrans, kVec>(L, args);
  }
  if (MmaSmem<TileM, kTrans>::BYTES <= L.smem_optin && blocks(TileM::BM, TileM::BN) >= L.sm_count)
    return matmul_mma_cuda<T, TileM, kTrans, kVec>(L, args);
  matmul_mma_cuda<T, TileS, kTrans, kVec>(L, args);
}

// --- f32: SIMT FP32 ------------------------------------------------------------------------------

constexpr int kF32Tile = 128, kF32BK = 8, kF32Pitch = kF32Tile + 4;

// C[m, n] += A[m, k] B[k, n] in f32 FMA for a 128x128 tile, then out = act(C + bias).
// 256 threads as 16 x 16 (ty, tx), each an 8x8 register tile: rows ty * 4 + {0..3} and
// 64 + ty * 4 + {0..3}, columns likewise from tx (halves 64 apart keep a warp's float4 smem reads
// conflict-free). K in steps of 8 through two smem buffers: As [k][m] (A transposed), Bs [k][n];
// the next step's global loads wait in registers while this step's FMAs run. kVec: 16-byte
// global loads (K, or N for b [K, N], a multiple of 4, bases 16-byte aligned).
template <bool kTrans, bool kVec>
__global__ void __launch_bounds__(256, 2) matmul_f32_kernel(const MatmulArgs<float> p) {
  __shared__ __align__(16) float As[2][kF32BK][kF32Pitch];
  __shared__ __align__(16) float Bs[2][kF32BK][kF32Pitch];
  const int M = p.M, N = p.N, K = p.K;
  const int tid = int(threadIdx.x), tx = tid & 15, ty = tid >> 4;
  int bm0, bn0;
  tile_origin(M, N, kF32Tile, kF32Tile, bm0, bn0);
  const int64_t bi = p.batch0 + blockIdx.z;
  const float *a, *b;
  batch_operands(p, bi, a, b);
  float* out = p.out + bi * int64_t(M) * N;

  // row[i .. i + 4) as far as limit, zeros past it (or everywhere when !ok)
  auto load4 = [&](const float* row, int i, int limit, bool ok) {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (!ok) return v;
    if constexpr (kVec) {
      if (i < limit) v = *reinterpret_cast<const float4*>(row + i);
    } else {
      if (i < limit) v.x = row[i];
      if (i + 1 < limit) v.y = row[i + 1];
      if (i + 2 < limit) v.z = row[i + 2];
      if (i + 3 < limit) v.w = row[i + 3];
    }
    return v;
  };
  // Loads: A (and b [N, K]) row tid / 2, k (tid % 2) * 4 + [0, 4); b [K, N] k-row tid / 32,
  // columns (tid % 32) * 4 + [0, 4).
  const int lr = tid >> 1, lk = (tid & 1) * 4;
  const int bkr = tid >> 5, bnc = (tid & 31) * 4;
  const bool a_ok = bm0 + lr < M;
  const float* a_row = a + int64_t(a_ok ? bm0 + lr : 0) * K;
  const bool bt_ok = bn0 + lr < N;
  const float* bt_row = b + int64_t(bt_ok ? bn0 + lr : 0) * K;
  float4 ra, rb;
  auto fetch = [&](int k0) {
    ra = load4(a_row, k0 + lk, K, a_ok);
    if constexpr (kTrans) rb = load4(bt_row, k0 + lk, K, bt_ok);
    else rb = load4(b + int64_t(k0 + bkr) * N, bn0 + bnc, N, k0 + bkr < K);
  };
  auto stash = [&](int buf) {
    As[buf][lk + 0][lr] = ra.x;
    As[buf][lk + 1][lr] = ra.y;
    As[buf][lk + 2][lr] = ra.z;
    As[buf][lk + 3][lr] = ra.w;
    if constexpr (kTrans) {
      Bs[buf][lk + 0][lr] = rb.x;
      Bs[buf][lk + 1][lr] = rb.y;
      Bs[buf][lk + 2][lr] = rb.z;
      Bs[buf][lk + 3][lr] = rb.w;
    } else {
      *reinterpret_cast<float4*>(&Bs[buf][bkr][bnc]) = rb;
    }
  };

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < 8; j++) acc[i][j] = 0.f;

  const int ktiles = ceil_div(K, kF32BK);
  fetch(0);
  stash(0);
  __syncthreads();
  for (int kt = 0; kt < ktiles; kt++) {
    const int buf = kt & 1;
    if (kt + 1 < ktiles) fetch((kt + 1) * kF32BK);
#pragma unroll
    for (int k = 0; k < kF32BK; k++) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][k][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][k][64 + tx * 4]);
      const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < 8; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    if (kt + 1 < ktiles) stash(buf ^ 1);  // read last in step kt - 1, before the barrier it passed
    __syncthreads();
  }

  // out[m, n] = act(C[m, n] + bias[n])
#pragma unroll
  for (int i = 0; i < 8; i++) {
    const int row = bm0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
    if (row >= M) continue;
    float* orow = out + int64_t(row) * N;
#pragma unroll
    for (int h = 0; h < 2; h++) {
      const int col = bn0 + h * 64 + tx * 4;
      if (col >= N) continue;
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; j++) v[j] = col + j < N ? epilogue(acc[i][h * 4 + j], p.bias, col + j, p.act) : 0.f;
      if (p.out_vec) {  // N % 4 == 0: the 4 columns are all in
        *reinterpret_cast<float4*>(orow + col) = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; j++)
          if (col + j < N) orow[col + j] = v[j];
      }
    }
  }
}

template <bool kTrans, bool kVec>
void matmul_f32_cuda(const Launch& L, MatmulArgs<float> args) {
  const int64_t tiles = int64_t(ceil_div(args.M, kF32Tile)) * ceil_div(args.N, kF32Tile);
  if (tiles > INT_MAX) fail(ErrorCode::Shape, "matmul: the output is too large for one CUDA launch");
  for_batch_chunks(args.nbatch, [&](int64_t b0, unsigned nb) {
    args.batch0 = b0;
    matmul_f32_kernel<kTrans, kVec><<<dim3(unsigned(tiles), 1, nb), 256, 0, stream_of(L)>>>(args);
    check_launch("matmul_f32_kernel");
  });
}

// --- M <= 8: GEMV --------------------------------------------------------------------------------

constexpr int kGemvThreads = 256;
constexpr int kGemvCols = 4;  // gemv_t: columns per warp

// Elements per load: a 16-byte chunk (kVec) or one element.
template <class T, bool kVec>
constexpr int kChunk = kVec ? kPack<T> : 1;

__device__ __forceinline__ void unpack16(const Pack16& v, float (&f)[4]) {
#pragma unroll
  for (int i = 0; i < 4; i++) f[i] = __uint_as_float(v.w[i]);
}
__device__ __forceinline__ void unpack16(const Pack16& v, float (&f)[8], __nv_bfloat16) {
#pragma unroll
  for (int i = 0; i < 4; i++) {  // element 2i in the low half of word i
    f[2 * i] = __uint_as_float(v.w[i] << 16);
    f[2 * i + 1] = __uint_as_float(v.w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack16(const Pack16& v, float (&f)[8], __half) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    __half2 h;
    memcpy(&h, &v.w[i], 4);
    const float2 x = __half22float2(h);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}
// p[0, kChunk) as f32 (kVec: p 16-byte aligned).
template <class T, bool kVec>
__device__ __forceinline__ void load_chunk(const T* p, float (&f)[kChunk<T, kVec>]) {
  if constexpr (!kVec) {
    f[0] = to_f32(*p);
  } else if constexpr (std::is_same_v<T, float>) {
    unpack16(load16(p), f);
  } else {
    unpack16(load16(p), f, T{});
  }
}

// out[m, n] = act(sum_k a[m, k] b[n, k] + bias[n]) for b [N, K], m < M <= MR. A block's 8 warps
// are G = 8 / ks column groups x ks k-slices: warp (g, s) owns columns n0 + g * 4 + [0, 4) and
// k-chunks s * 32 + lane + i * 32 * ks, each a 16-byte load from b's rows (kVec) or one element.
// Warp shuffles, then smem across the k-slices, reduce the sums. Grid: (N / (4 G), batches).
template <class T, int MR, bool kVec>
__global__ void __launch_bounds__(kGemvThreads) gemv_t_kernel(const MatmulArgs<T> p, int ks) {
  constexpr int V = kChunk<T, kVec>, C = kGemvCols;
  __shared__ float red[kGemvThreads / 32 * C * MR];  // [warp][c][m]
  const int M = p.M, N = p.N, K = p.K;
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int G = 8 / ks, g = warp % G, s = warp / G;
  const int64_t bi = p.batch0 + blockIdx.y;
  const T *a, *b;
  batch_operands(p, bi, a, b);
  const int nb0 = int(blockIdx.x) * G * C;  // the block's first column
  const int n0 = nb0 + g * C;

  float acc[MR][C];
#pragma unroll
  for (int m = 0; m < MR; m++)
#pragma unroll
    for (int c = 0; c < C; c++) acc[m][c] = 0.f;
  const T* brow[C];
#pragma unroll
  for (int c = 0; c < C; c++) brow[c] = b + int64_t(n0 + c < N ? n0 + c : 0) * K;

  const int chunks = K / V;  // kVec: K % V == 0
  for (int q = s * 32 + lane; q < chunks; q += 32 * ks) {
    float bv[C][V];
#pragma unroll
    for (int c = 0; c < C; c++) {
      if (n0 + c < N) {
        load_chunk<T, kVec>(brow[c] + q * V, bv[c]);
      } else {
#pragma unroll
        for (int e = 0; e < V; e++) bv[c][e] = 0.f;
      }
    }
#pragma unroll
    for (int m = 0; m < MR; m++) {
      if (m >= M) break;
      float av[V];
      load_chunk<T, kVec>(a + int64_t(m) * K + q * V, av);
#pragma unroll
      for (int c = 0; c < C; c++)
#pragma unroll
        for (int e = 0; e < V; e++) acc[m][c] = fmaf(av[e], bv[c][e], acc[m][c]);
    }
  }
#pragma unroll
  for (int m = 0; m < MR; m++)
#pragma unroll
    for (int c = 0; c < C; c++) {
      const float v = warp_sum(acc[m][c]);
      if (lane == 0) red[(warp * C + c) * MR + m] = v;
    }
  __syncthreads();
  // thread -> (column gc of the block, row m); warp s * G + g holds slice s of columns g * C + c
  if (tid < G * C * MR) {
    const int gc = tid / MR, m = tid % MR, n = nb0 + gc;
    if (m < M && n < N) {
      float v = 0.f;
      for (int sl = 0; sl < ks; sl++) v += red[(sl * G * C + gc) * MR + m];
      p.out[(bi * M + m) * int64_t(N) + n] = from_f32<T>(epilogue(v, p.bias, n, p.act));
    }
  }
}

// out[m, n] = sum_{k in split} a[m, k] b[k, n] for b [K, N], m < M <= MR. A block is 256 threads
// as R = 256 / CH k-rows x CH chunks of V columns (W = CH V columns of b, 16-byte loads of a row
// when kVec); each thread walks k = kbeg + row, + R, ... < kend (kbeg = blockIdx.y * kps).
// Shuffles over the k-rows of a warp, then smem over the warps. part null: out = act(sum + bias);
// otherwise part [splits][nbatch][M][N] gets the split's sum. Grid: (N / W, splits, batches).
template <class T, int MR, bool kVec>
__global__ void __launch_bounds__(kGemvThreads) gemv_n_kernel(const MatmulArgs<T> p, int kps, float* part) {
  constexpr int V = kChunk<T, kVec>, CH = kVec ? 8 : 32, R = kGemvThreads / CH, W = CH * V;
  constexpr int WARPS = kGemvThreads / 32;
  __shared__ float red[WARPS * W * MR];  // [warp][column][m]
  const int M = p.M, N = p.N, K = p.K;
  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int chunk = tid % CH, row = tid / CH;
  const int64_t bi = p.batch0 + blockIdx.z;
  const T *a, *b;
  batch_operands(p, bi, a, b);
  const int nb0 = int(blockIdx.x) * W, n = nb0 + chunk * V;  // kVec: N % V == 0, so n < N covers the chunk
  const int kbeg = int(blockIdx.y) * kps, kend = min(K, kbeg + kps);

  float acc[MR][V];
#pragma unroll
  for (int m = 0; m < MR; m++)
#pragma unroll
    for (int e = 0; e < V; e++) acc[m][e] = 0.f;
  if (n < N) {
    for (int k = kbeg + row; k < kend; k += R) {
      float bv[V];
      load_chunk<T, kVec>(b + int64_t(k) * N + n, bv);
#pragma unroll
      for (int m = 0; m < MR; m++) {
        if (m >= M) break;
        const float av = to_f32(a[int64_t(m) * K + k]);
#pragma unroll
        for (int e = 0; e < V; e++) acc[m][e] = fmaf(av, bv[e], acc[m][e]);
      }
    }
  }
  // lanes l, l + CH, ... of a warp hold the same columns at other k-rows
#pragma unroll
  for (int o = CH; o < 32; o <<= 1)
#pragma unroll
    for (int m = 0; m < MR; m++)
#pragma unroll
      for (int e = 0; e < V; e++) acc[m][e] += __shfl_xor_sync(0xffffffffu, acc[m][e], o);
  if (lane < CH)
#pragma unroll
    for (int m = 0; m < MR; m++)
#pragma unroll
      for (int e = 0; e < V; e++) red[(warp * W + chunk * V + e) * MR + m] = acc[m][e];
  __syncthreads();
  for (int o = tid; o < W * MR; o += kGemvThreads) {
    const int col = o / MR, m = o % MR, nn = nb0 + col;
    if (m >= M || nn >= N) continue;
    float v = 0.f;
#pragma unroll
    for (int w = 0; w < WARPS; w++) v += red[w * W * MR + o];
    const int64_t idx = (bi * M + m) * int64_t(N) + nn;
    if (part) part[int64_t(blockIdx.y) * p.nbatch * M * N + idx] = v;
    else p.out[idx] = from_f32<T>(epilogue(v, p.bias, nn, p.act));
  }
}

// out[i] = act(sum_s part[s][i] + bias[i % N]) over out's total elements.
template <class T>
__global__ void gemv_reduce_kernel(const float* part, int splits, int64_t total, int N, const T* bias,
                                   Activation act, T* out) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    float v = 0.f;
    for (int s = 0; s < splits; s++) v += part[s * total + i];
    out[i] = from_f32<T>(epilogue(v, bias, int(i % N), act));
  }
}

template <class T, int MR>
void matmul_gemv_cuda(const Launch& L, MatmulArgs<T> args, bool transpose_b) {
  constexpr int V = kPack<T>;
  const int N = args.N, K = args.K;
  const int64_t target = 2 * int64_t(std::max(L.sm_count, 1));  // blocks for a full machine
  if (transpose_b) {
    const bool vec = K % V == 0 && aligned16(args.a) && aligned16(args.b);
    // k-slices per column: until the blocks fill the machine, while every lane keeps >= 2 chunks
    const int64_t chunks = vec ? K / V : K;
    int ks = 1;
    while (ks < 8 && int64_t(ceil_div(N, 8 / ks * kGemvCols)) * args.nbatch < target &&
           chunks >= int64_t(ks) * 2 * 32 * 2)
      ks *= 2;
    const unsigned gx = unsigned(ceil_div(N, 8 / ks * kGemvCols));
    for_batch_chunks(args.nbatch, [&](int64_t b0, unsigned nb) {
      args.batch0 = b0;
      if (vec) gemv_t_kernel<T, MR, true><<<dim3(gx, nb), kGemvThreads, 0, stream_of(L)>>>(args, ks);
      else gemv_t_kernel<T, MR, false><<<dim3(gx, nb), kGemvThreads, 0, stream_of(L)>>>(args, ks);
      check_launch("gemv_t_kernel");
    });
    return;
  }
  const bool vec = N % V == 0 && aligned16(args.b);
  const int W = vec ? 8 * V : 32;
  const unsigned gx = unsigned(ceil_div(N, W));
  // K splits: until the blocks fill the machine, while each split keeps >= 256 rows of b
  int splits = 1;
  while (splits < 32 && int64_t(gx) * args.nbatch * splits < target && K >= int64_t(splits) * 2 * 256) splits *= 2;
  const int kps = std::max(1, ceil_div(K, splits));
  splits = K > 0 ? ceil_div(K, kps) : 1;
  const int64_t total = args.nbatch * args.M * int64_t(N);
  float* part = splits > 1 ? static_cast<float*>(L.scratch(size_t(splits) * size_t(total) * sizeof(float))) : nullptr;
  for_batch_chunks(args.nbatch, [&](int64_t b0, unsigned nb) {
    args.batch0 = b0;
    if (vec) gemv_n_kernel<T, MR, true><<<dim3(gx, unsigned(splits), nb), kGemvThreads, 0, stream_of(L)>>>(args, kps, part);
    else gemv_n_kernel<T, MR, false><<<dim3(gx, unsigned(splits), nb), kGemvThreads, 0, stream_of(L)>>>(args, kps, part);
    check_launch("gemv_n_kernel");
  });
  if (part) {
    const unsigned blocks = unsigned(std::min<int64_t>(ceil_div<int64_t>(total, 256), 8 * int64_t(std::max(L.sm_count, 1))));
    gemv_reduce_kernel<T><<<blocks, 256, 0, stream_of(L)>>>(part, splits, total, N, args.bias, args.act, args.out);
    check_launch("gemv_reduce_kernel");
  }
}

// The batch strides (elements) of t [tb..., R, C] in BatchMap's right-aligned slots, 0 where t's
// dim is 1 (broadcast) or absent.
void batch_strides(const Shape& t, int64_t (&stride)[kMaxBatchDims]) {
  const int tb = int(t.size()) - 2;
  int64_t s = t[t.size() - 2] * t[t.size() - 1];
  for (int d = tb - 1; d >= 0; d--) {
    stride[kMaxBatchDims - tb + d] = t[size_t(d)] == 1 ? 0 : s;
    s *= t[size_t(d)];
  }
}

}  // namespace

void matmul(const Launch& L, const Tensor& out, const Tensor& a, const Tensor& b, const Tensor* bias,
            const MatmulParams& p) {
  if (out.numel() == 0) return;
  const int64_t M = a.dim(-2), K = a.dim(-1), N = out.dim(-1);
  const int64_t nbatch = out.numel() / (M * N);
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    fail(ErrorCode::Shape, "matmul: CUDA matmul dims must be below 2^31, got M = " + std::to_string(M) +
                               ", N = " + std::to_string(N) + ", K = " + std::to_string(K));
  const int ob = out.rank() - 2;
  if (ob > kMaxBatchDims) fail(ErrorCode::Shape, "matmul: at most 6 batch dims on CUDA");
  // One b for every batch (a's batch shape is then out's): the batches are just more rows of a.
  const bool fold = b.numel() == K * N && a.numel() == nbatch * M * K && nbatch * M <= INT_MAX;
  BatchMap map;
  for (int d = 0; d < kMaxBatchDims; d++) map.size[d] = 1, map.a_stride[d] = 0, map.b_stride[d] = 0;
  if (!fold) {
    for (int d = 0; d < ob; d++) map.size[kMaxBatchDims - ob + d] = out.shape[size_t(d)];
    batch_strides(a.shape, map.a_stride);
    batch_strides(b.shape, map.b_stride);
  }
  dispatch_float(out.dtype, "matmul", [&](auto tag) {
    using T = decltype(tag);
    MatmulArgs<T> args;
    args.a = static_cast<const T*>(a.raw());
    args.b = static_cast<const T*>(b.raw());
    args.bias = bias ? static_cast<const T*>(bias->raw()) : nullptr;
    args.out = static_cast<T*>(out.raw());
    args.M = int(fold ? nbatch * M : M);
    args.N = int(N);
    args.K = int(K);
    args.nbatch = fold ? 1 : nbatch;
    args.batch0 = 0;
    args.batch = map;
    args.act = p.activation;
    const bool trans = p.transpose_b;
    if (args.M <= 8) {
      args.out_vec = false;
      switch (args.M) {
        case 1: return matmul_gemv_cuda<T, 1>(L, args, trans);
        case 2: return matmul_gemv_cuda<T, 2>(L, args, trans);
        case 3: case 4: return matmul_gemv_cuda<T, 4>(L, args, trans);
        default: return matmul_gemv_cuda<T, 8>(L, args, trans);
      }
    }
    if constexpr (std::is_same_v<T, float>) {
      args.out_vec = N % 4 == 0 && aligned16(args.out);
      const bool vec = K % 4 == 0 && (trans || N % 4 == 0) && aligned16(args.a) && aligned16(args.b);
      if (trans) vec ? matmul_f32_cuda<true, true>(L, args) : matmul_f32_cuda<true, false>(L, args);
      else vec ? matmul_f32_cuda<false, true>(L, args) : matmul_f32_cuda<false, false>(L, args);
    } else {
      args.out_vec = N % 2 == 0 && (reinterpret_cast<uintptr_t>(args.out) & 3) == 0;
      const bool vec = K % 8 == 0 && (trans || N % 8 == 0) && aligned16(args.a) && aligned16(args.b);
      if (trans) vec ? matmul_mma_pick<T, true, true>(L, args) : matmul_mma_pick<T, true, false>(L, args);
      else vec ? matmul_mma_pick<T, false, true>(L, args) : matmul_mma_pick<T, false, false>(L, args);
    }
  });
}

}  // namespace ignis::cuda
