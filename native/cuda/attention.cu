// Attention on CUDA, as cpu::attention: out [B, Sq, Hq, D] = softmax(scale Q K^T) V per query
// head over keys [0, kv_len) of k, v [B, Skv, Hk, D], causal or not, GQA/MQA. Three kernels share
// one row layout and one split-KV partial format (attention.cuh): a tensor-core flash kernel
// (flash.cu: f16/bf16, D 64, 80, 128), a split-KV decode kernel for few rows per kv head
// (decode.cu), and a SIMT tiled kernel for the rest (simt.cu); a combine kernel merges the
// splits (combine.cu). This file picks the kernel.
#include "attention.cuh"

namespace ignis::cuda {
namespace attn {

// Key splits for `blocks` blocks of (rows, b, hk): enough blocks for `target`, at least
// `min_keys` keys a split, split_keys a multiple of 64. Sized for `keys`.
void choose_splits(AttnArgs& a, int64_t blocks, int64_t keys, int64_t target, int64_t min_keys) {
  int64_t splits = 1;
  if (blocks < target && keys > min_keys) {
    splits = std::min<int64_t>(ceil_div(target, blocks), ceil_div(keys, min_keys));
    splits = std::min<int64_t>(std::max<int64_t>(splits, 1), kMaxSplits);
  }
  int64_t per = ceil_div<int64_t>(std::max<int64_t>(keys, 1), splits);
  per = ceil_div<int64_t>(per, 64) * 64;
  a.split_keys = int(std::min<int64_t>(per, INT_MAX / 2));
  a.splits = int(std::max<int64_t>(1, ceil_div<int64_t>(std::max<int64_t>(keys, 1), a.split_keys)));
}

// Grid of one attention kernel: row_blocks * splits * Hk * B blocks.
dim3 attention_grid(const AttnArgs& a) {
  const int64_t blocks = int64_t(a.row_blocks) * a.splits * a.Hk * a.B;
  if (blocks > INT_MAX) fail(ErrorCode::Argument, "attention: too many rows and heads for one CUDA launch");
  return dim3(unsigned(blocks));
}

// Scratch for the split partials, when there are splits.
void alloc_partials(AttnArgs& a, const Launch& L) {
  if (a.splits == 1) return;
  const size_t rows = size_t(a.splits) * size_t(a.B) * size_t(a.Hk) * size_t(a.R);
  const size_t o_bytes = (rows * size_t(a.D) * sizeof(float) + 255) / 256 * 256;
  char* base = static_cast<char*>(L.scratch(o_bytes + rows * sizeof(float2)));
  a.part_o = reinterpret_cast<float*>(base);
  a.part_ml = reinterpret_cast<float2*>(base + o_bytes);
}

namespace {

// Which kernel: R (rows a kv head) up to 4, the SIMT split-KV decode kernel; f16/bf16 with D 64,
// 80 or 128, the flash kernel (split-KV too when its blocks do not fill the device); else the
// decode kernel up to 32 rows (blocks of 8 rows, the K/V of a split read by each, mostly from
// L2), and the SIMT tiled kernel beyond.
template <class T>
void attention_cuda(const AttnArgs& a, const Launch& L, int64_t keys) {
  const bool packed = a.D % kPack<T> == 0 && aligned16(a.q) && aligned16(a.k) && aligned16(a.v);
  const int packs = a.D / kPack<T>;
  if (packed && a.R <= 4 && packs <= decode_max_packs(a.R)) {
    return attention_decode<T>(a, L, keys, a.R == 1 ? 1 : a.R == 2 ? 2 : 4);
  }
  if constexpr (sizeof(T) == 2) {
    if (packed && aligned16(a.out) && L.smem_optin >= flash_smem_bytes<128>()) {
      if (a.D == 64 || a.D == 80 || a.D == 128) return attention_flash<T>(a, L, keys);
    }
  }
  if (packed && a.R <= 32 && packs <= decode_max_packs(8)) return attention_decode<T>(a, L, keys, 8);
  attention_simt<T>(a, L, keys);
}
}  // namespace
}  // namespace attn

void attention(const Launch& L, const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
               const AttentionParams& p) {
  if (out.numel() == 0) return;
  for (int i = 0; i < 4; i++)
    if (q.dim(i) > INT_MAX / 2 || k.dim(i) > INT_MAX / 2)
      fail(ErrorCode::Argument, "attention: " + shape_str(q.shape) + " x " + shape_str(k.shape) +
                                    " is too large for the CUDA kernels");
  attn::AttnArgs a{};
  a.q = q.raw();
  a.k = k.raw();
  a.v = v.raw();
  a.out = out.raw();
  a.B = int(q.dim(0));
  a.Sq = int(q.dim(1));
  a.Hq = int(q.dim(2));
  a.D = int(q.dim(3));
  a.Skv = int(k.dim(1));
  a.Hk = int(k.dim(2));
  a.G = a.Hq / a.Hk;
  if (int64_t(a.Sq) * a.G > INT_MAX / 2) fail(ErrorCode::Argument, "attention: too many query rows for the CUDA kernels");
  a.R = a.Sq * a.G;
  a.kv_len = std::min<int64_t>(p.kv_len, a.Skv);
  a.q_pos0 = p.q_pos0;
  a.pos_dev = p.pos_dev;
  a.causal = p.causal;
  a.window = p.window;
  a.softcap = p.softcap;
  a.scale_log2 = p.scale * attn::kLog2e;
  a.splits = 1;
  // With pos_dev the run-time kv_len is unknown here: size for k's full rows.
  const int64_t keys = p.pos_dev ? a.Skv : a.kv_len;
  dispatch_float(q.dtype, "attention", [&](auto tag) { attn::attention_cuda<decltype(tag)>(a, L, keys); });
}
}  // namespace ignis::cuda
