#!/usr/bin/env python3
"""Times 1-D k-means (k = 32) on 1,000,000 trained-like weights: deepcompress's Lloyd
(linear initialisation) and exact DP against scikit-learn's KMeans with the same linear
initialisation (32 centres evenly spaced between the smallest and largest weight,
n_init=1, Lloyd's algorithm, max_iter=300).

The weights come from `kmeans_weights` (a seeded mixture of Laplace and normal
distributions, seed 42, see benches/src/weights.rs), which writes them as raw
little-endian f32 and times the Rust side in the same run. The median of the repeats is
reported; run with RAYON_NUM_THREADS=1 and OMP_NUM_THREADS=1 for single-threaded figures.

    pip install numpy scikit-learn
    python3 benches/compare_kmeans.py [repeats]      # from the repository root
"""
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from sklearn.cluster import KMeans

ROOT = pathlib.Path(__file__).resolve().parent.parent
K = 32


def main():
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "weights.f32"
        out = subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "deepcompress-benches", "--bin",
             "kmeans_weights", "--", str(path), str(repeats)],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout
        w = np.fromfile(path, dtype="<f4").astype(np.float64).reshape(-1, 1)
    ours = [json.loads(line) for line in out.splitlines()]

    init = np.linspace(w.min(), w.max(), K).reshape(-1, 1)
    runs = []
    for _ in range(repeats):
        km = KMeans(n_clusters=K, init=init, n_init=1, algorithm="lloyd", max_iter=300)
        start = time.perf_counter()
        km.fit(w)
        runs.append((time.perf_counter() - start, km.inertia_, km.n_iter_))

    rows = []
    for method in ("lloyd-linear", "exact-dp"):
        r = [o for o in ours if o["method"] == method]
        rows.append((f"deepcompress {method}", statistics.median(o["seconds"] for o in r), r[0]["sse"]))
    sk = statistics.median(r[0] for r in runs)
    rows.append((f"scikit-learn KMeans (lloyd, linear init, {runs[0][2]} iterations)", sk, runs[0][1]))

    print(f"1-D k-means, k = {K}, {w.shape[0]:,} weights; median of {repeats} runs\n")
    print("| implementation | seconds | SSE |")
    print("|---|---:|---:|")
    for name, secs, sse in rows:
        print(f"| {name} | {secs:.3f} | {sse:.6f} |")
    for name, secs, _ in rows[:-1]:
        print(f"\n{name} time / scikit-learn time = {secs / sk:.3f}")


if __name__ == "__main__":
    main()
