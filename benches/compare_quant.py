#!/usr/bin/env python3
"""Times onnxruntime's dynamic int8 MatMul next to deepcompress's integer kernels on the
same 4096x4096 weight (`benches/src/lowrank.rs::weight_like`, seed 5), at batch 1 and 128.

onnxruntime: a one-node ONNX graph `Y = X @ W^T` in f32, and the same graph after
`onnxruntime.quantization.quantize_dynamic` (int8 weights per tensor, activations
quantized at run time, MatMulInteger kernels), both with 2 intra-op threads.
deepcompress: the `quant_matmul` bin (f32 = faer GEMM; int8 GEMV/GEMM and 4-bit GEMV).
Each round times every kernel (medians of the repeats); rounds alternate between the two
libraries so that a change of background load hits both, and the table shows the median
over rounds.

    pip install numpy onnx onnxruntime
    python3 benches/compare_quant.py [repeats] [rounds]      # from the repository root
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

ROOT = pathlib.Path(__file__).resolve().parent.parent
N = 4096


def median_secs(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_model(w, path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", N])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", N])
    wt = numpy_helper.from_array(np.ascontiguousarray(w.T), name="wt")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "wt"], ["y"])], "mm", [x], [y], [wt])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def ours(d, repeats):
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "deepcompress-benches", "--bin",
         "quant_matmul", "--", d, str(repeats)],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return {(r["batch"], r["kernel"]): r["seconds"] for r in map(json.loads, out.splitlines())}


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 21
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    samples = {}
    with tempfile.TemporaryDirectory() as d:
        first = ours(d, repeats)
        w = np.fromfile(f"{d}/weight_{N}x{N}.f32", dtype="<f4").reshape(N, N)
        f32_path, q_path = f"{d}/mm.onnx", f"{d}/mm_int8.onnx"
        matmul_model(w, f32_path)
        quantize_dynamic(f32_path, q_path, weight_type=QuantType.QInt8)
        f32, q = session(f32_path), session(q_path)
        inputs = {}
        for batch in (1, 128):
            x = ((np.arange(batch)[:, None] * 7 + np.arange(N)[None, :] * 31) % 17 / 8.5 - 1.0).astype(np.float32)
            inputs[batch] = x
            ref = x @ w.T
            rel = float(np.linalg.norm(q.run(None, {"x": x})[0] - ref) / np.linalg.norm(ref))
            print(f"onnxruntime int8 relative error at batch {batch}: {rel:.4f}")
        for r in range(rounds):
            for key, secs in (first if r == 0 else ours("", repeats)).items():
                samples.setdefault(key, []).append(secs)
            for batch, x in inputs.items():
                for name, sess in (("onnxruntime-f32", f32), ("onnxruntime-int8", q)):
                    secs = median_secs(lambda: sess.run(None, {"x": x}), repeats)
                    samples.setdefault((batch, name), []).append(secs)
    rows = {key: statistics.median(v) for key, v in samples.items()}
    print(f"\nonnxruntime {ort.__version__}, medians of {repeats} calls, median over {rounds} rounds\n")
    print("| batch | kernel | median ms | range over rounds | vs our f32 | vs onnxruntime f32 |")
    print("|---|---|---|---|---|---|")
    for (batch, kernel), secs in sorted(rows.items()):
        base, ortf = rows[(batch, "ours-f32")], rows[(batch, "onnxruntime-f32")]
        lo, hi = min(samples[(batch, kernel)]), max(samples[(batch, kernel)])
        print(f"| {batch} | {kernel} | {secs * 1e3:.2f} | {lo * 1e3:.2f} - {hi * 1e3:.2f} | "
              f"{base / secs:.2f}x | {ortf / secs:.2f}x |")


if __name__ == "__main__":
    main()
