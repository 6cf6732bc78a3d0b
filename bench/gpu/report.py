# Joins the GPU benchmark's two JSON streams (bench/gpu/bench.cu's rows and torch_peer.py's, one
# object per line, matched by id) into one table: times, rates, % of the measured machine limits,
# the speed ratio against PyTorch, and PASS/FAIL for the rows that carry a bar in issue 5.
#
#   python3 bench/gpu/report.py ours.jsonl torch.jsonl [--json out.json] [--md out.md]
#
# Measured limits: copy bandwidth = the larger of the two 1 GiB device-to-device copies (bytes
# read + written); tensor-core peak = PyTorch's bf16 matmul 8192^3. Memory-bound rows are rated
# in GB/s against the copy bandwidth, matmul and attention rows in TFLOP/s against that peak.
import argparse
import datetime
import json
import sys


def load(path):
    rows, meta = {}, {}
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"report: cannot read {path}: {e}", file=sys.stderr)
        return rows, meta, []
    order = []
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        rid = r.get("id")
        if rid == "meta":
            meta = r
        elif rid and rid not in rows:  # the first row of an id wins (a crash note may follow it)
            rows[rid] = r
            order.append(rid)
    return rows, meta, order


def ok(r):
    return r is not None and "error" not in r and (r.get("ms") or 0) > 0


def rate(r):
    """TFLOP/s for compute rows, GB/s for memory rows (None when not measured)."""
    if not ok(r):
        return None
    if r.get("kind") == "compute":
        return r["flops"] / r["ms"] / 1e9 if r.get("flops") else None
    return r["bytes"] / r["ms"] / 1e6 if r.get("bytes") else None


def unit(kind):
    return "TFLOP/s" if kind == "compute" else "GB/s"


def bar_for(rid, ours, torch_rows, speed, pct):
    """(the bar's text, True/False/None) for the rows that have a bar in issue 5."""
    if rid == "matmul_bf16_4096":
        return ">= 0.6x torch", None if speed is None else speed >= 0.6
    if rid in ("attn_prefill_causal", "attn_prefill"):
        return ">= 0.6x SDPA", None if speed is None else speed >= 0.6
    if rid in ("attn_decode_b1", "attn_decode_b8"):
        return ">= 60% copy BW", None if pct is None else pct >= 0.60
    if rid == "gemv_int8_m1":
        bf16 = torch_rows.get("gemv_bf16_m1")
        vs_bf16 = bf16["ms"] / ours["ms"] if ok(bf16) and ok(ours) else None
        text = ">= 70% copy BW, >= 1.6x torch bf16 GEMV"
        if vs_bf16 is not None:
            text += f" (is {vs_bf16:.2f}x)"
        if pct is None or vs_bf16 is None:
            return text, None
        return text, pct >= 0.70 and vs_bf16 >= 1.6
    return "", None


def fmt(x, digits=3):
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:.1f}"
    if abs(x) >= 10:
        return f"{x:.2f}"
    return f"{x:.{digits}f}" if abs(x) >= 0.01 else f"{x:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("torch")
    ap.add_argument("--json")
    ap.add_argument("--md")
    ap.add_argument("--note", action="append", default=[], help="a line for the notes (repeatable)")
    args = ap.parse_args()

    ours, ours_meta, order = load(args.ours)
    torch_rows, torch_meta, torch_order = load(args.torch)
    for rid in torch_order:
        if rid not in order:
            order.append(rid)

    copy_rates = [x for x in (rate(ours.get("copy")), rate(torch_rows.get("copy"))) if x]
    copy_bw = max(copy_rates) if copy_rates else None
    tc_peak = rate(torch_rows.get("matmul_bf16_8192")) or rate(ours.get("matmul_bf16_8192"))
    tc_src = "torch bf16 matmul 8192^3" if rate(torch_rows.get("matmul_bf16_8192")) else "ignis bf16 matmul 8192^3"
    gpu = torch_meta.get("gpu") or ours_meta.get("gpu") or "unknown GPU"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    table, passes, bars = [], 0, 0
    for rid in order:
        o, t = ours.get(rid), torch_rows.get(rid)
        base = o or t
        kind = base.get("kind", "memory")
        ro, rt = rate(o), rate(t)
        peak = tc_peak if kind == "compute" else copy_bw
        pct = ro / peak if ro is not None and peak else None
        speed = t["ms"] / o["ms"] if ok(o) and ok(t) else None
        bar, passed = bar_for(rid, o, torch_rows, speed, pct)
        check = (o or {}).get("check", "-") if o else "-"
        if o and "error" in o:
            check = "error"
        result = ""
        if bar:
            bars += 1
            if check not in ("ok", "skipped"):
                result = "FAIL (check)" if check == "FAIL" else "n/a"
            elif passed is None:
                result = "n/a"
            else:
                result = "PASS" if passed else "FAIL"
            passes += result == "PASS"
        table.append({
            "id": rid, "row": base.get("name", rid), "shape": base.get("shape", ""), "kind": kind,
            "ours_ms": o.get("ms") if ok(o) else None, "torch_ms": t.get("ms") if ok(t) else None,
            "ours_rate": ro, "torch_rate": rt, "unit": unit(kind), "pct_peak": pct, "speed": speed,
            "bar": bar, "result": result, "check": check, "err": (o or {}).get("err"),
            "ours": o, "torch": t,
        })

    head = ["row", "shape", "ours ms", "torch ms", "ours rate", "torch rate", "% peak", "torch/ours", "bar", "result",
            "check"]

    def cells(r):
        return [r["row"], r["shape"], fmt(r["ours_ms"], 4), fmt(r["torch_ms"], 4),
                f"{fmt(r['ours_rate'])} {r['unit']}" if r["ours_rate"] is not None else "-",
                f"{fmt(r['torch_rate'])} {r['unit']}" if r["torch_rate"] is not None else "-",
                f"{100 * r['pct_peak']:.0f}%" if r["pct_peak"] is not None else "-",
                f"{r['speed']:.2f}x" if r["speed"] is not None else "-",
                r["bar"], r["result"],
                r["check"] + (f" ({r['err']:.1e})" if isinstance(r["err"], (int, float)) and r["check"] != "error" else "")]

    peaks = (f"measured copy bandwidth {fmt(copy_bw)} GB/s (read + write, larger of the two 1 GiB copies); "
             f"tensor-core peak {fmt(tc_peak)} TFLOP/s ({tc_src})")
    notes = list(args.note)
    notes.append("torch/ours is a speed ratio, torch ms / ours ms (> 1: ignis faster). % peak: ours against the "
                 "copy bandwidth (memory rows) or the tensor-core peak (matmul and attention rows).")
    notes.append("Timing, both sides: warm-up, then launches queued behind a GPU-side gate, one event pair per "
                 "launch, median; inputs rotate over copies totalling > 4x the L2. torch f32 matmul with "
                 "allow_tf32=False (the TF32 row is torch only).")
    notes.append("check: ignis outputs of one launch against a float64 host reference (relative L2 error over "
                 "sampled outputs, poisoned with NaN first).")
    for r in table:
        for side, row in (("ignis", r["ours"]), ("torch", r["torch"])):
            if row and row.get("error"):
                notes.append(f"{r['id']} ({side}): error: {row['error']}")
            elif row and side == "torch" and row.get("note"):
                notes.append(f"{r['id']} (torch): {row['note']}")
            if row and row.get("gate_timeouts"):
                notes.append(f"{r['id']} ({side}): the gate timed out {row['gate_timeouts']} time(s); "
                             "host overhead may be in that row's times")
        if r["check"] == "FAIL":
            notes.append(f"{r['id']}: WRONG RESULT, relative error {r['err']} > tol {r['ours'].get('tol')}"
                         + (f" ({r['ours']['check_note']})" if r["ours"].get("check_note") else ""))
    versions = f"torch {torch_meta.get('torch', '?')} (CUDA {torch_meta.get('cuda', '?')})" if torch_meta else "torch: no rows"

    # Plain text, aligned.
    body = [cells(r) for r in table]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    out = [f"GPU benchmark | {gpu} | {versions} | {date}", peaks, ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    for b in body:
        out.append("  ".join(c.rjust(w) if 2 <= i <= 7 else c.ljust(w) for i, (c, w) in enumerate(zip(b, widths))).rstrip())
    out.append("")
    out.append(f"bars: {passes} of {bars} PASS")
    out += ["- " + n for n in notes]
    print("\n".join(out))

    if args.md:
        md = [f"## {date} — GPU benchmark (issue 5): {gpu}", "",
              f"Command: `bash bench/gpu/run.sh` on the device machine; {versions}.", "", peaks + ".", "",
              "| " + " | ".join(head) + " |",
              "| " + " | ".join("---:" if 2 <= i <= 7 else "---" for i in range(len(head))) + " |"]
        md += ["| " + " | ".join(c.replace("|", "\\|") for c in b) + " |" for b in body]
        md += ["", f"Bars: {passes} of {bars} PASS.", ""] + ["- " + n for n in notes]
        with open(args.md, "w", encoding="utf-8") as f:
            f.write("\n".join(md) + "\n")

    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"gpu": gpu, "date": date, "ours_meta": ours_meta, "torch_meta": torch_meta,
                       "copy_bandwidth_gbs": copy_bw, "tensor_core_peak_tflops": tc_peak,
                       "bars_passed": passes, "bars": bars, "rows": table}, f, indent=1)


if __name__ == "__main__":
    main()
