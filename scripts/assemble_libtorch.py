#!/usr/bin/env python3
"""Assemble a CPU-only libtorch directory from the PyPI wheels, for tch / torch-sys.

The official libtorch zips live on a host this project cannot reach; the PyPI wheel
`torch==2.13.0` carries the same headers and libraries under `torch/include` and `torch/lib`.
`libtorch_cpu.so` there NEEDs `libcudart.so.13` and `libcupti.so.13` (shipped by the small
`nvidia-cuda-runtime` / `nvidia-cuda-cupti` wheels) even on a CPU-only machine, and the wheel's
`libtorch.so` NEEDs `libtorch_cuda.so`, so we leave both CUDA torch libraries out and make
`libtorch.so` a link to `libtorch_cpu.so`, which is what `-ltorch` then resolves to.

Usage: assemble_libtorch.py OUT_DIR TORCH_WHEEL CUDART_WHEEL CUPTI_WHEEL VERSION
Writes into OUT_DIR (which must not exist yet); the caller renames it into place.
"""
import os
import shutil
import sys
import zipfile

# What tch links and loads on a CPU: torch itself, c10, and the OpenMP runtime torch was built with.
TORCH_LIBS = ["libtorch_cpu.so", "libc10.so", "libgomp.so.1"]


def extract_member(wheel: zipfile.ZipFile, member: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with wheel.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def main() -> int:
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir, torch_whl, cudart_whl, cupti_whl, version = sys.argv[1:]
    lib_dir = os.path.join(out_dir, "lib")
    os.makedirs(lib_dir)

    with zipfile.ZipFile(torch_whl) as wheel:
        for member in wheel.namelist():
            if member.startswith("torch/include/") and not member.endswith("/"):
                extract_member(wheel, member, os.path.join(out_dir, member[len("torch/"):]))
        for lib in TORCH_LIBS:
            extract_member(wheel, "torch/lib/" + lib, os.path.join(lib_dir, lib))

    for wheel_path, soname in ((cudart_whl, "libcudart.so.13"), (cupti_whl, "libcupti.so.13")):
        with zipfile.ZipFile(wheel_path) as wheel:
            member = next((n for n in wheel.namelist() if n.endswith("/lib/" + soname)), None)
            if member is None:
                print(f"error: {wheel_path} has no lib/{soname}", file=sys.stderr)
                return 1
            extract_member(wheel, member, os.path.join(lib_dir, soname))

    for lib in os.listdir(lib_dir):
        os.chmod(os.path.join(lib_dir, lib), 0o755)
    # `-ltorch` must not pull libtorch_cuda.so: point it at the CPU library.
    os.symlink("libtorch_cpu.so", os.path.join(lib_dir, "libtorch.so"))
    with open(os.path.join(out_dir, "build-version"), "w") as f:
        f.write(version + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
