# The numpy peer of `npm run bench`: one python3 child per bench run (bench/peers.ts) that builds
# the bench's cases and times them on request with time.perf_counter (median of repeated runs),
# so its samples interleave with ignis's and onnxruntime-node's.
import json
import statistics
import sys
import time

import numpy as np


def rmsnorm(x, g, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x):
    return 0.5 * x * (1 + np.tanh(np.float32(0.7978845608) * (x + np.float32(0.044715) * x * x * x)))


def rope_tables(S, D, theta=10000.0):
    half = D // 2
    inv = theta ** (-(2 * (np.arange(D) % half)) / D)
    a = np.arange(S)[:, None] * inv[None, :]
    return np.cos(a).astype(np.float32)[:, None, :], np.sin(a).astype(np.float32)[:, None, :]


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def attention(q, k, v, mask):
    # q [H, Sq, D], k, v [H, Skv, D]: S = q k^T * scale (+ mask), P = softmax(S), y = P v
    s = (q @ k.transpose(0, 2, 1)) * np.float32(1 / np.sqrt(q.shape[-1]))
    if mask is not None:
        s += mask
    return softmax(s) @ v


def build(case, rng):
    """A closure that runs the case once; inputs are made here, outside the timed call."""
    kind = case["kind"]
    f32 = lambda *shape: rng.standard_normal(shape, dtype=np.float32)
    if kind == "matmul":
        a, b = f32(case["M"], case["K"]), f32(case["K"], case["N"])
        return lambda: a @ b
    if kind == "matmul_wt":  # x [M, K] @ w^T, w [N, K] (the weight layout ignis uses)
        x, w = f32(case["M"], case["K"]), f32(case["N"], case["K"])
        return lambda: x @ w.T
    if kind == "matmul_int8":  # dequantize int8 [N, K] with per-group scales, then x @ w^T
        M, K, N, G = case["M"], case["K"], case["N"], case["groupSize"]
        x = f32(M, K)
        q = rng.integers(-127, 128, size=(N, K // G, G), dtype=np.int8)
        s = (np.abs(f32(N, K // G, 1)) * 0.01).astype(np.float32)
        return lambda: x @ (q.astype(np.float32) * s).reshape(N, K).T
    if kind == "attention":
        H, Sq, Skv, D = case["H"], case["Sq"], case["Skv"], case["D"]
        q, k, v = f32(H, Sq, D), f32(H, Skv, D), f32(H, Skv, D)
        mask = None
        if case["causal"] and Sq > 1:
            i = np.arange(Sq)[:, None] + (Skv - Sq)
            mask = np.where(np.arange(Skv)[None, :] > i, -np.inf, 0).astype(np.float32)
        return lambda: attention(q, k, v, mask)
    if kind == "rmsnorm":
        x, g = f32(case["R"], case["C"]), f32(case["C"])
        return lambda: rmsnorm(x, g)
    if kind == "softmax":
        x = f32(case["R"], case["C"])
        return lambda: softmax(x)
    if kind == "gelu":
        x = f32(case["R"], case["C"])
        return lambda: gelu(x)
    if kind == "add":
        a, b = f32(case["R"], case["C"]), f32(case["R"], case["C"])
        return lambda: a + b
    if kind == "rope":
        S, H, D = case["S"], case["H"], case["D"]
        x = f32(1, S, H, D)
        cos, sin = rope_tables(S, D)
        return lambda: rope(x, cos, sin)
    return None


def median_ms(fn, budget_s, min_runs, max_runs):
    for _ in range(2):
        fn()  # warm up: first-touch, BLAS thread start
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def blas_name():
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f'{blas.get("name", "?")} {blas.get("version", "")}'.strip()
    except Exception:
        return "unknown BLAS"


def main():
    """Line protocol, one JSON object per line each way, so the bench can interleave numpy's
    samples with its in-process ones (the machine's speed drifts; alternating keeps the ratio
    fair): {"hello": 1} -> version and BLAS; {"build": id, "case": {...}} -> {"ok": bool};
    {"run": id, "budgetMs", "minRuns", "maxRuns"} -> {"ms": median}; {"drop": id}."""
    rng = np.random.default_rng(1)
    built = {}
    for line in sys.stdin:
        req = json.loads(line)
        if "hello" in req:
            out = {"version": np.__version__, "blas": blas_name()}
        elif "build" in req:
            fn = build(req["case"], rng)
            if fn is not None:
                built[req["build"]] = fn
            out = {"ok": fn is not None}
        elif "run" in req:
            out = {"ms": median_ms(built[req["run"]], req["budgetMs"] / 1e3, req["minRuns"], req["maxRuns"])}
        else:
            built.pop(req.get("drop"), None)
            out = {}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
