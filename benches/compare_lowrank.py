#!/usr/bin/env python3
"""Times deepcompress's low-rank decompositions next to scikit-learn and TensorLy on the
same inputs:

* rank-64 randomized SVD of a 2048x2048 and a 4096x1024 weight-like matrix (power-law
  spectrum plus noise, `benches/src/lowrank.rs`): deepcompress `RandomizedSvd` (10 extra
  samples, 2 power iterations, its default, and 7) against `sklearn.utils.extmath.randomized_svd` with its
  defaults (10 extra samples, n_iter='auto' = 7 here) and with n_iter=2, and the full
  LAPACK SVD (`scipy.linalg.svd`, gesdd) for the optimal error;
* Tucker-2 of a 256x256x3x3 kernel to ranks (64, 64): deepcompress `tucker2` against
  `tensorly.decomposition.partial_tucker` on modes (0, 1).

`lowrank_svd` writes the matrices (raw little-endian f32) and times the Rust side in the
same run. Medians of the repeats; errors are Frobenius norms relative to the optimal
rank-64 error (SVD) or to the kernel norm (Tucker).

    pip install numpy scipy scikit-learn tensorly
    python3 benches/compare_lowrank.py [repeats]      # from the repository root
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import scipy.linalg
from sklearn.utils.extmath import randomized_svd

ROOT = pathlib.Path(__file__).resolve().parent.parent
RANK = 64


def timed(f, repeats):
    out, secs = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = f()
        secs.append(time.perf_counter() - start)
    return statistics.median(secs), out


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "deepcompress-benches", "--bin",
             "lowrank_svd", "--", tmp, str(repeats)],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout
        ours = [json.loads(line) for line in out.splitlines()]
        mats = {}
        for (m, n) in [(2048, 2048), (4096, 1024)]:
            mats[(m, n)] = np.fromfile(f"{tmp}/weight_{m}x{n}.f32", dtype="<f4").reshape(m, n)
        kernel_path = pathlib.Path(tmp) / "kernel_256x256x3x3.f32"
        kernel = (np.fromfile(kernel_path, dtype="<f4").reshape(256, 256, 3, 3)
                  if kernel_path.exists() else None)

    print(f"Rank-{RANK} SVD; median of {repeats} runs\n")
    print("| matrix | implementation | seconds | error / optimal |")
    print("|---|---|---:|---:|")
    for (m, n), a in mats.items():
        secs, (u, s, vt) = timed(lambda: scipy.linalg.svd(a, full_matrices=False), repeats)
        optimal = np.sqrt(np.sum(s[RANK:].astype(np.float64) ** 2))
        rows = [("scipy.linalg.svd (LAPACK gesdd, full)", secs, 1.0)]
        for label, n_iter in [("sklearn randomized_svd (defaults)", "auto"),
                              ("sklearn randomized_svd (n_iter=2)", 2)]:
            secs, (u, s, vt) = timed(
                lambda: randomized_svd(a, RANK, n_iter=n_iter, random_state=0), repeats)
            err = np.linalg.norm(a - (u * s) @ vt) / optimal
            rows.append((label, secs, err))
        labels = {"full-svd": "full SVD (faer)",
                  "randomized-svd": "RandomizedSvd (2 power iterations)",
                  "randomized-svd-q7": "RandomizedSvd (7 power iterations)"}
        for method, label in labels.items():
            r = [o for o in ours if o.get("shape") == [m, n] and o["method"] == method]
            if r:
                rows.append((f"deepcompress {label}",
                             statistics.median(o["seconds"] for o in r), r[0]["error_ratio"]))
        for label, secs, err in rows:
            print(f"| {m}x{n} | {label} | {secs:.3f} | {err:.4f} |")

    tucker = [o for o in ours if o["method"] == "tucker2"]
    if kernel is not None and tucker:
        from tensorly.decomposition import partial_tucker
        print(f"\nTucker-2 of a 256x256x3x3 kernel to ranks (64, 64); median of {repeats} runs\n")
        print("| implementation | seconds | relative error |")
        print("|---|---:|---:|")
        secs, ((core, factors), _) = timed(
            lambda: partial_tucker(kernel.astype(np.float64), rank=[64, 64], modes=[0, 1]), repeats)
        back = np.einsum("abhw,ia,jb->ijhw", core, factors[0], factors[1])
        err = np.linalg.norm(kernel - back) / np.linalg.norm(kernel)
        print(f"| tensorly partial_tucker (HOOI, defaults) | {secs:.3f} | {err:.4f} |")
        for o in sorted({o["label"] for o in tucker}):
            r = [t for t in tucker if t["label"] == o]
            print(f"| deepcompress {o} | {statistics.median(t['seconds'] for t in r):.3f} | "
                  f"{r[0]['relative_error']:.4f} |")


if __name__ == "__main__":
    main()
