//! Build script: check that libtorch and HDF5 are where `scripts/setup.sh` puts them, and embed
//! an rpath to libtorch's lib directory so binaries, tests and examples run without
//! `LD_LIBRARY_PATH`.
//!
//! `LIBTORCH` comes from `.cargo/config.toml` (the `.libtorch` link made by setup), or from the
//! environment. With `LIBTORCH_USE_PYTORCH=1` torch-sys asks a Python torch for its paths; we
//! ask the same Python, so the rpath follows it.

use std::path::{Path, PathBuf};
use std::process::Command;

const SETUP_HINT: &str = "run `scripts/setup.sh` from the repository root (it installs what is \
missing and links libtorch as .libtorch)";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");

    let lib_dir = libtorch_lib_dir();
    if !lib_dir.join("libtorch_cpu.so").exists() {
        fail(&format!("libtorch was not found: {} has no libtorch_cpu.so; {SETUP_HINT}", lib_dir.display()));
    }
    println!("cargo:rerun-if-changed={}", lib_dir.join("libtorch_cpu.so").display());
    // RPATH (not RUNPATH) so it also applies to libtorch's own dependencies (libc10, libgomp).
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{}", lib_dir.display());
    // A CUDA libtorch: nothing references libtorch_cuda.so directly, so the linker's default
    // --as-needed would drop it and CUDA would never load; keep it as a dependency.
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-L{}", lib_dir.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }

    check_hdf5();
    compile_shims(&lib_dir);
    export_tch_version();
}

/// tch's version from Cargo.lock, for `keras-tch info` (`KERAS_TCH_TCH_VERSION`).
fn export_tch_version() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find(|package| package.contains("\nname = \"tch\"\n"))
        .and_then(|package| package.lines().find_map(|line| line.strip_prefix("version = \"")))
        .map(|rest| rest.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KERAS_TCH_TCH_VERSION={version}");
}

/// The C++ shims for what tch does not expose — `src/train/fused_adam.cpp` (libtorch's fused
/// Adam kernel), `src/train/distributed.cpp` (c10d's store and Gloo process group; NCCL's in
/// `distributed_nccl.cpp`, against a CUDA libtorch),
/// `src/graph/fused_conv.cpp` (oneDNN's fused convolutions for inference),
/// `src/graph/winograd_conv.cpp` (Winograd's transforms, for inference) and
/// `src/libtorch_version.cpp` (libtorch's own version) — compiled with the flags torch-sys
/// compiles its own C++ with.
fn compile_shims(lib_dir: &Path) {
    let sources = [
        "src/train/fused_adam.cpp",
        "src/train/distributed.cpp",
        "src/graph/fused_conv.cpp",
        "src/graph/winograd_conv.cpp",
        "src/libtorch_version.cpp",
    ];
    for source in sources.iter().chain(&["src/train/shim_support.hpp"]) {
        println!("cargo:rerun-if-changed={source}");
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib_dir.parent().map(|root| root.join("include")).unwrap_or_default();
    if !include.join("ATen/ATen.h").exists() {
        fail(&format!("libtorch's headers were not found: {} has no ATen/ATen.h; {SETUP_HINT}", include.display()));
    }
    // c10d's ProcessGroupGloo.hpp includes Gloo's headers, which the torch wheel does not ship
    // (the class holds Gloo's types only through pointers; the code is in libtorch_cpu.so).
    if !Path::new("/usr/include/gloo/context.h").exists() {
        fail(&format!("Gloo's headers were not found (Debian package libgloo-dev); {SETUP_HINT}"));
    }
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-DUSE_C10D_GLOO")
        .files(sources);
    println!("cargo:rustc-check-cfg=cfg(keras_tch_nccl)");
    println!("cargo:rerun-if-changed={NCCL_SHIM}");
    if lib_dir.join("libtorch_cuda.so").exists() {
        match cuda_and_nccl_headers(lib_dir) {
            Some(headers) => {
                // c10d's NCCL process group, for data-parallel training between GPUs.
                build.includes(headers).flag("-DUSE_C10D_NCCL").flag("-DKERAS_TCH_WITH_NCCL").file(NCCL_SHIM);
                println!("cargo:rustc-cfg=keras_tch_nccl");
                // The shim picks the rank's GPU with c10::cuda::set_device.
                println!("cargo:rustc-link-search=native={}", lib_dir.display());
                println!("cargo:rustc-link-lib=dylib=c10_cuda");
            }
            None => println!(
                "cargo:warning=a CUDA libtorch without CUDA's and NCCL's headers at hand (crt/host_config.h, nv/target, nccl.h): \
                 built without NCCL, so torchrun jobs on GPUs will refuse to start; set CUDA_HOME and NCCL_INCLUDE_DIR"
            ),
        }
    }
    build.compile("keras_tch_shims");
}

/// The NCCL process group's shim, compiled only against a CUDA libtorch.
const NCCL_SHIM: &str = "src/train/distributed_nccl.cpp";

/// The folders holding `cuda_runtime_api.h` and `nccl.h`: `CUDA_HOME`'s and `NCCL_INCLUDE_DIR`,
/// or those of the `nvidia-*` wheels installed beside the torch wheel (`scripts/setup.sh
/// --cuda`'s venv). `None` when either is missing.
fn cuda_and_nccl_headers(lib_dir: &Path) -> Option<Vec<PathBuf>> {
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=NCCL_INCLUDE_DIR");
    // lib_dir is site-packages/torch/lib in a wheel's venv.
    let nvidia = lib_dir.parent().and_then(Path::parent).map(|site_packages| site_packages.join("nvidia")).unwrap_or_default();
    let mut candidates: Vec<PathBuf> = ["CUDA_HOME", "NCCL_INCLUDE_DIR"]
        .iter()
        .filter_map(|name| std::env::var_os(name).map(PathBuf::from))
        .flat_map(|dir| [dir.join("include"), dir])
        .collect();
    candidates.extend(["cu13", "cu12", "cuda_runtime", "nccl"].iter().map(|name| nvidia.join(name).join("include")));
    let find = |header: &str| candidates.iter().find(|dir| dir.join(header).exists()).cloned();
    // cuda_runtime.h includes crt/host_config.h and CCCL's nv/target, which the runtime's
    // wheel leaves to the nvidia-cuda-crt and nvidia-cuda-cccl wheels.
    Some(vec![find("crt/host_config.h")?, find("nv/target")?, find("nccl.h")?])
}

fn libtorch_lib_dir() -> PathBuf {
    if std::env::var_os("LIBTORCH_USE_PYTORCH").is_some() {
        let python = std::env::var("PYTHON_SYS_EXECUTABLE").unwrap_or_else(|_| "python3".into());
        let output =
            Command::new(&python).args(["-c", "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"]).output();
        return match output {
            Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
            _ => fail(&format!(
                "LIBTORCH_USE_PYTORCH is set but `{python} -c 'import torch'` failed; \
                 activate the venv made by `scripts/setup.sh --cuda`, or unset it and {SETUP_HINT}"
            )),
        };
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        fail(&format!("LIBTORCH is not set (.cargo/config.toml sets it); {SETUP_HINT}"));
    };
    let libtorch = PathBuf::from(libtorch);
    // Resolve the .libtorch link so the rpath names the real directory in the cache.
    std::fs::canonicalize(&libtorch)
        .unwrap_or_else(|_| fail(&format!("libtorch was not found at {}; {SETUP_HINT}", libtorch.display())))
        .join("lib")
}

fn check_hdf5() {
    println!("cargo:rerun-if-env-changed=HDF5_DIR");
    if std::env::var_os("HDF5_DIR").is_some() {
        return;
    }
    let found_by_pkg_config = Command::new("pkg-config").args(["--exists", "hdf5"]).status().is_ok_and(|status| status.success());
    let debian_header = Path::new("/usr/include/hdf5/serial/hdf5.h").exists();
    if !found_by_pkg_config && !debian_header {
        fail(&format!(
            "the HDF5 C library was not found (Debian package libhdf5-dev); {SETUP_HINT}, \
             or set HDF5_DIR to an HDF5 installation"
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("\nerror: {message}\n");
    println!("cargo:warning={message}");
    std::process::exit(1);
}
