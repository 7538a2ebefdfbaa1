#!/usr/bin/env python3
"""Times scipy.sparse CSR against numpy dense on the CSR-versus-dense benchmark matrices:
CSR matvec against dense GEMV at batch 1, CSR x dense against dense GEMM at batch 64, on
4096 x 4096 float32 weights at 30 to 99 % sparsity (uniformly random positions).

The matrices are the ones `cargo bench -p deepcompress-benches --bench sparse` uses
(SplitMix64 values with seed 1, zero positions with seed 2, inputs with seed 3; see
benches/src/sparse.rs). The `sparse_weights` binary writes them as raw little-endian
float32 into a temporary directory and, in the same run, times deepcompress's own dense
and CSR kernels with the same median-of-repeats method. Everything stays float32. Each
figure is the median of `repeats` timeit repeats (each repeat runs the operation
`number` times, chosen by timeit's autorange, and is divided by `number`).

    pip install numpy scipy threadpoolctl
    python3 benches/compare_sparse.py [repeats]      # from the repository root, default 20

Set OMP_NUM_THREADS=1 (numpy's BLAS) and RAYON_NUM_THREADS=1 (deepcompress) for
single-threaded figures; scipy's CSR kernels are always single-threaded.
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import timeit

import numpy as np
import scipy
import scipy.sparse as sp

ROOT = pathlib.Path(__file__).resolve().parent.parent
N = 4096


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (threadpoolctl not installed)"
    info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not info:
        return "unknown (threadpoolctl found no BLAS)"
    return ", ".join(f"{i['internal_api']} {i.get('version')}: {i['num_threads']} threads"
                     for i in info)


def median_time(fn, repeats):
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(t / number for t in timer.repeat(repeat=repeats, number=number))


def load(path, rows, cols):
    a = np.fromfile(path, dtype="<f4")
    assert a.size == rows * cols, (path, a.size)
    return np.ascontiguousarray(a.reshape(rows, cols))


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"numpy {np.__version__}, scipy {scipy.__version__}; numpy BLAS: {blas_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "deepcompress-benches", "--bin",
             "sparse_weights", "--", tmp, str(repeats)],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout
        lines = [json.loads(line) for line in out.splitlines()]
        files = {l["file"]: l for l in lines if "file" in l}
        ours = {(l["kind"], l["sparsity"], l["batch"]): l["seconds"]
                for l in lines if "impl" in l}
        d = pathlib.Path(tmp)
        xs = {b: load(d / f"x_{b}.f32", N, b) for b in (1, 64)}
        x1 = np.ascontiguousarray(xs[1][:, 0])  # a vector: GEMV and CSR matvec
        x64 = xs[64]
        w = load(d / "w_dense.f32", N, N)
        assert w.dtype == np.float32 and np.count_nonzero(w) == files["w_dense.f32"]["nnz"]
        dense = {1: median_time(lambda: w @ x1, repeats),
                 64: median_time(lambda: w @ x64, repeats)}
        del w
        rows = []
        for name, meta in files.items():
            if not name.startswith("w_") or name == "w_dense.f32":
                continue
            s = meta["sparsity"]
            w = load(d / name, N, N)
            nnz = np.count_nonzero(w)
            # The zeros must be exactly where the Rust generator put them.
            assert nnz == meta["nnz"], (name, nnz, meta["nnz"])
            csr = sp.csr_matrix(w)
            assert csr.dtype == np.float32 and csr.nnz == nnz
            np.testing.assert_allclose(csr @ x1, w @ x1, rtol=1e-3, atol=1e-3)
            del w
            t1 = median_time(lambda: csr @ x1, repeats)
            t64 = median_time(lambda: csr @ x64, repeats)
            rows.append((s, nnz, t1, t64))
    print(f"\n4096 x 4096 float32, median of {repeats} repeats; ratio = dense time / CSR time "
          "(> 1: CSR faster)\n")
    print("| sparsity | nnz | batch 1: scipy CSR (ms) | numpy GEMV (ms) | ratio | ours: CSR (ms) "
          "| ours: ratio | batch 64: scipy CSR (ms) | numpy GEMM (ms) | ratio | ours: CSR (ms) "
          "| ours: ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ms = lambda t: f"{1e3 * t:.3f}" if t is not None else "-"
    ratio = lambda a, b: f"{a / b:.2f}" if a is not None and b is not None else "-"
    for s, nnz, t1, t64 in rows:
        o1, o64 = ours.get(("csr", s, 1)), ours.get(("csr", s, 64))
        od1, od64 = ours.get(("dense", 0.0, 1)), ours.get(("dense", 0.0, 64))
        print(f"| {s:.2f} | {nnz} | {ms(t1)} | {ms(dense[1])} | {ratio(dense[1], t1)} | {ms(o1)} "
              f"| {ratio(od1, o1)} | {ms(t64)} | {ms(dense[64])} | {ratio(dense[64], t64)} "
              f"| {ms(o64)} | {ratio(od64, o64)} |")
    if ("dense", 0.0, 1) in ours:
        print(f"\nours dense: batch 1 {ms(ours[('dense', 0.0, 1)])} ms, "
              f"batch 64 {ms(ours[('dense', 0.0, 64)])} ms")
    for b, col in ((1, 2), (64, 3)):
        print(f"scipy CSR vs numpy dense, batch {b}: break-even sparsity {break_even(rows, col, dense[b])}")
        if ("dense", 0.0, b) in ours:
            ours_rows = [(s, n, ours.get(("csr", s, 1)), ours.get(("csr", s, 64)))
                         for s, n, _, _ in rows]
            print(f"ours CSR vs ours dense, batch {b}: break-even sparsity "
                  f"{break_even(ours_rows, col, ours[('dense', 0.0, b)])}")


def break_even(rows, col, dense):
    """The sparsity where CSR time equals dense time, interpolated linearly between the
    two measured sparsities around it."""
    pts = [(r[0], r[col]) for r in rows]
    if pts[0][1] <= dense:
        return f"<= {pts[0][0]:.2f} (CSR already faster at the lowest sparsity measured)"
    for (s0, t0), (s1, t1) in zip(pts, pts[1:]):
        if t0 > dense >= t1:
            return f"{s0 + (s1 - s0) * (t0 - dense) / (t0 - t1):.3f}"
    return f"> {pts[-1][0]:.2f} (CSR slower at every sparsity measured)"


if __name__ == "__main__":
    main()
