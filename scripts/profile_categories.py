#!/usr/bin/env python3
"""Sum a `perf report --sort dso,sym --stdio` listing (stdin) by kind of work, for
scripts/profile.sh. The first pattern that matches a symbol decides its kind."""
import re
import sys

KINDS = [
    ("oneDNN convolution kernels (JIT code)", r"\[JIT\]"),
    ("oneDNN reorders and drivers", r"dnnl::"),
    ("optimizer update (fused Adam; elementwise SGD, RMSprop)", r"adam|lerp|addcdiv|[sS]qrt|pow_tensor|div_true"),
    ("BatchNorm forward and backward", r"batch_norm"),
    ("copies (layout changes, casts)", r"direct_copy|copy_kernel|_to_copy"),
    ("residual adds and gradient sums", r"add_kernel"),
    ("ReLU forward and backward", r"threshold|clamp_min"),
    ("pooling", r"pool"),
    ("matrix multiplies outside oneDNN (Dense)", r"gemm|sgemm|mkl_blas"),
    ("OpenMP threads waiting", r"libgomp"),
    ("operating system (page faults, scheduling)", r"kernel\.kallsyms"),
    ("malloc and free", r"libc\.so"),
    ("model construction (random initialisation)", r"uniform|normal_kernel"),
]


def main():
    totals, total = {}, 0.0
    for line in sys.stdin:
        match = re.match(r"\s*([\d.]+)%\s+(\S.*)", line)
        if not match or line.lstrip().startswith("#"):
            continue
        share, what = float(match.group(1)), match.group(2)
        kind = next((name for name, pattern in KINDS if re.search(pattern, what)), "other")
        totals[kind] = totals.get(kind, 0.0) + share
        total += share
    for kind, share in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"{share / total * 100:5.1f}%  {kind}")


if __name__ == "__main__":
    main()
