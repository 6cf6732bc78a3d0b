# The GPU benchmark's PyTorch side: the rows of bench/gpu/bench.cu (same ids, shapes and work
# counts) through PyTorch on the same GPU, timed the same way, one JSON object per row on stdout.
# Each row: warm-up, then chunks of launches queued behind torch.cuda._sleep (so Python's launch
# overhead stays out of the numbers), one event pair per launch, median; inputs rotate over copies
# that together exceed 4x the L2. Two rows are the machine's measured limits: the 1 GiB copy
# (copy bandwidth) and bf16 matmul 8192^3 (tensor-core peak).
#
#   python3 bench/gpu/torch_peer.py [id ...]      all rows when none
#
# f32 matmul runs with torch.backends.cuda.matmul.allow_tf32 = False (true f32, as ignis's f32);
# the extra row matmul_f32_tf32_4096 shows what TF32 gives.
import json
import math
import os
import statistics
import sys
import traceback

import torch
import torch.nn.functional as F

DEV = torch.device("cuda", 0)
BUDGET_MS = float(os.environ.get("IGNIS_BENCH_MS", "800"))
GATE_CYCLES = 50_000_000  # ~25 ms of torch.cuda._sleep at ~2 GHz: the host queues a chunk meanwhile

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


def emit(row):
    print(json.dumps(row), flush=True)


def l2_bytes():
    return getattr(torch.cuda.get_device_properties(DEV), "L2_cache_size", 50 << 20) or (50 << 20)


def copies_for(nbytes):
    """How many input sets to rotate over so that together they exceed 4x the L2."""
    return int(min(16, max(1, math.ceil(4 * l2_bytes() / max(nbytes, 1)))))


def time_launches(fn, copies):
    """fn(c) enqueues one launch on input set c; the median of per-launch event times (ms)."""
    fn(0)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for i in range(3):
        fn(i % copies)
    e1.record()
    torch.cuda.synchronize()
    est = max(e0.elapsed_time(e1) / 3, 1e-3)
    n = int(min(200, max(20, BUDGET_MS / est)))
    chunk = min(n, 50)
    for i in range(chunk):
        fn(i % copies)
    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(chunk)]
    stops = [torch.cuda.Event(enable_timing=True) for _ in range(chunk)]
    ms, nxt = [], 0
    gate = hasattr(torch.cuda, "_sleep")
    while len(ms) < n:
        m = min(chunk, n - len(ms))
        if gate:
            torch.cuda._sleep(GATE_CYCLES)
        for j in range(m):
            starts[j].record()
            fn(nxt % copies)
            stops[j].record()
            nxt += 1
        torch.cuda.synchronize()
        ms += [starts[j].elapsed_time(stops[j]) for j in range(m)]
    return {"ms": statistics.median(ms), "ms_min": min(ms), "iters": len(ms), "copies": copies}


def randn(*shape, dtype=torch.bfloat16):
    return torch.randn(*shape, device=DEV, dtype=torch.float32).to(dtype)


# ---- rows -------------------------------------------------------------------------------------------


def row_copy():
    n = 1 << 30
    src = torch.full((n,), 0x5A, dtype=torch.uint8, device=DEV)
    dst = torch.zeros(n, dtype=torch.uint8, device=DEV)
    t = time_launches(lambda c: dst.copy_(src), 1)
    return dict(t, bytes=2.0 * n, note="dst.copy_(src)")


def row_matmul(dtype, n, tf32=False):
    es = torch.empty((), dtype=dtype).element_size()
    copies = copies_for(3 * n * n * es)
    sets = [(randn(n, n, dtype=dtype), randn(n, n, dtype=dtype)) for _ in range(copies)]
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        t = time_launches(lambda c: torch.matmul(*sets[c]), copies)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    note = "torch.matmul"
    if dtype == torch.float32:
        note += ", allow_tf32=" + str(tf32)
    return dict(t, flops=2.0 * n**3, bytes=3.0 * n * n * es, note=note)


def row_gemv_bf16(M, N, K):
    copies = copies_for(N * K * 2)
    sets = [(randn(M, K), randn(N, K)) for _ in range(copies)]
    t = time_launches(lambda c: F.linear(*sets[c]), copies)
    return dict(t, flops=2.0 * M * N * K, bytes=2.0 * (N * K + M * K + M * N), note="F.linear(x, W), W [N, K] bf16")


def row_gemv_int8(M, N, K):
    """x bf16 [M, K] @ (int8 [N, K] * per-channel scales bf16 [N])^T."""
    wbytes = N * K + N * 2
    copies = copies_for(wbytes)
    sets = []
    for _ in range(copies):
        w = randn(N, K, dtype=torch.float32)
        s = w.abs().amax(dim=1).clamp_min(1e-8) / 127
        q = torch.round(w / s[:, None]).clamp(-127, 127).to(torch.int8)
        sets.append((randn(M, K), q, s.to(torch.bfloat16)))
        del w
    bytes_ = wbytes + 2.0 * (M * K + M * N)
    fused, why = hasattr(torch, "_weight_int8pack_mm"), "not in this torch"
    if fused:
        try:
            torch._weight_int8pack_mm(*sets[0])
            torch.cuda.synchronize()
        except Exception as e:  # no CUDA kernel in this build
            fused, why = False, str(e).splitlines()[0][:120]
    if fused:
        t = time_launches(lambda c: torch._weight_int8pack_mm(*sets[c]), copies)
        return dict(t, flops=2.0 * M * N * K, bytes=bytes_, note="torch._weight_int8pack_mm (per-channel scales)")
    t = time_launches(lambda c: F.linear(sets[c][0], sets[c][1].to(torch.bfloat16) * sets[c][2][:, None]), copies)
    return dict(t, flops=2.0 * M * N * K, bytes=bytes_,
                note=f"dequantize + F.linear (torch._weight_int8pack_mm: {why})")


def row_prefill(causal, B=4, S=4096, H=32, D=128):
    copies = copies_for(4 * B * H * S * D * 2)
    sets = [tuple(randn(B, H, S, D) for _ in range(3)) for _ in range(copies)]  # [B, H, S, D]
    t = time_launches(lambda c: F.scaled_dot_product_attention(*sets[c], is_causal=causal), copies)
    flops = 4.0 * B * H * S * S * D
    return dict(t, flops=flops / 2 if causal else flops, bytes=4.0 * B * H * S * D * 2,
                note="F.scaled_dot_product_attention, [B, H, S, D], default backend")


def row_decode(B, Hq=32, Hk=8, T=4096, D=128):
    """One query over a T-token cache; is_causal=False (SDPA's causal mask is top-left aligned, which
    for one query would show it only key 0; the query at position T-1 sees every key)."""
    kv_bytes = 2.0 * B * T * Hk * D * 2
    copies = copies_for(kv_bytes)
    sets = [(randn(B, Hq, 1, D), randn(B, Hk, T, D), randn(B, Hk, T, D)) for _ in range(copies)]
    variants, gqa_error = {}, ""
    try:
        F.scaled_dot_product_attention(*sets[0], enable_gqa=True)
        torch.cuda.synchronize()
        variants["enable_gqa=True"] = time_launches(
            lambda c: F.scaled_dot_product_attention(*sets[c], enable_gqa=True), copies)
    except Exception as e:
        gqa_error = f"; enable_gqa=True failed: {str(e).splitlines()[0][:120]}"
    # kv heads repeated to 32 outside the timed region (reads 4x the bytes, but may hit a faster backend)
    rep = [(q, k.repeat_interleave(Hq // Hk, dim=1), v.repeat_interleave(Hq // Hk, dim=1)) for q, k, v in sets]
    variants["kv repeated to 32 heads"] = time_launches(lambda c: F.scaled_dot_product_attention(*rep[c]), copies)
    best = min(variants, key=lambda k: variants[k]["ms"])
    others = "; ".join(f"{k}: {v['ms']:.4f} ms" for k, v in variants.items() if k != best)
    return dict(variants[best], flops=4.0 * B * Hq * T * D, bytes=kv_bytes, bytes_note="K + V read once",
                note=f"SDPA [B, H, S, D], best of variants: {best}" + (f" (other: {others})" if others else "") + gqa_error)


def row_rmsnorm(R=4096, D=4096, eps=1e-5):
    copies = copies_for(R * D * 4)
    w = randn(D)
    xs = [randn(R, D) for _ in range(copies)]
    if hasattr(F, "rms_norm"):
        fn, note = (lambda c: F.rms_norm(xs[c], (D,), w, eps)), "F.rms_norm"
    else:
        def fn(c):
            x = xs[c].float()
            return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).to(torch.bfloat16) * w
        note = "rmsnorm from primitives (no F.rms_norm)"
    t = time_launches(fn, copies)
    return dict(t, bytes=4.0 * R * D + 2 * D, note=note)


def row_embedding(V=32000, D=4096, T=4096):
    copies = copies_for(T * D * 4)
    table = randn(V, D)
    ids = [torch.randint(0, V, (T,), device=DEV, dtype=torch.int32) for _ in range(copies)]
    note = "F.embedding, int32 ids"
    try:
        F.embedding(ids[0], table)
    except Exception:
        ids = [i.long() for i in ids]
        note = "F.embedding, int64 ids (converted outside the timed region)"
    t = time_launches(lambda c: F.embedding(ids[c], table), copies)
    return dict(t, bytes=4.0 * T * D + 4 * T, note=note)


def row_rope(B=1, S=4096, H=32, D=128, theta=10000.0):
    """Hugging Face's rotate-half form with cos/sin tables [S, 1, D] made outside the timed region."""
    copies = copies_for(B * S * H * D * 4)
    xs = [randn(B, S, H, D) for _ in range(copies)]
    half = D // 2
    inv = theta ** (-torch.arange(0, half, device=DEV, dtype=torch.float64) * 2 / D)
    ang = torch.arange(S, device=DEV, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)[:, None, :]
    cos, sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)

    def fn(c):
        x = xs[c]
        rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rot * sin

    t = time_launches(fn, copies)
    return dict(t, bytes=4.0 * B * S * H * D, note="x * cos + rotate_half(x) * sin (eager, several kernels)")


ROWS = [
    ("copy", "copy bandwidth (d2d memcpy)", "1 GiB", "memory", row_copy),
    ("matmul_bf16_2048", "matmul bf16", "2048^3", "compute", lambda: row_matmul(torch.bfloat16, 2048)),
    ("matmul_bf16_4096", "matmul bf16", "4096^3", "compute", lambda: row_matmul(torch.bfloat16, 4096)),
    ("matmul_bf16_8192", "matmul bf16", "8192^3", "compute", lambda: row_matmul(torch.bfloat16, 8192)),
    ("matmul_f16_4096", "matmul f16", "4096^3", "compute", lambda: row_matmul(torch.float16, 4096)),
    ("matmul_f32_4096", "matmul f32", "4096^3", "compute", lambda: row_matmul(torch.float32, 4096)),
    ("matmul_f32_tf32_4096", "matmul f32 (torch TF32)", "4096^3", "compute",
     lambda: row_matmul(torch.float32, 4096, tf32=True)),
    ("gemv_int8_m1", "gemv int8 g128 (matmul_q)", "1x8192x8192", "memory", lambda: row_gemv_int8(1, 8192, 8192)),
    ("gemv_int8_m8", "gemv int8 g128 (matmul_q)", "8x8192x8192", "memory", lambda: row_gemv_int8(8, 8192, 8192)),
    ("gemv_bf16_m1", "gemv bf16 (x @ W^T)", "1x8192x8192", "memory", lambda: row_gemv_bf16(1, 8192, 8192)),
    ("attn_prefill_causal", "attention prefill causal bf16", "4x4096x32x128", "compute", lambda: row_prefill(True)),
    ("attn_prefill", "attention prefill bf16", "4x4096x32x128", "compute", lambda: row_prefill(False)),
    ("attn_decode_b1", "attention decode bf16 (GQA 32/8)", "B1, 4096 keys, D128", "memory", lambda: row_decode(1)),
    ("attn_decode_b8", "attention decode bf16 (GQA 32/8)", "B8, 4096 keys, D128", "memory", lambda: row_decode(8)),
    ("rmsnorm", "rmsnorm bf16", "4096x4096", "memory", row_rmsnorm),
    ("embedding", "embedding bf16", "4096 ids, [32000, 4096]", "memory", row_embedding),
    ("rope", "rope bf16", "1x4096x32x128", "memory", row_rope),
]


def main():
    want = sys.argv[1:]
    known = {r[0] for r in ROWS}
    for w in want:
        if w not in known:
            sys.exit(f"unknown row '{w}'; rows: {' '.join(r[0] for r in ROWS)}")
    props = torch.cuda.get_device_properties(DEV)
    emit({"impl": "torch", "id": "meta", "gpu": torch.cuda.get_device_name(DEV), "torch": torch.__version__,
          "cuda": torch.version.cuda, "sm_count": props.multi_processor_count, "l2_bytes": l2_bytes(),
          "memory_bytes": props.total_memory, "allow_tf32": False, "gate": hasattr(torch.cuda, "_sleep")})
    for rid, name, shape, kind, fn in ROWS:
        if want and rid not in want:
            continue
        row = {"impl": "torch", "id": rid, "name": name, "shape": shape, "kind": kind}
        try:
            row.update(fn())
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            traceback.print_exc(file=sys.stderr)
        emit(row)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
