// c10d's NCCL process group, for data-parallel training on CUDA GPUs (one process a GPU, as
// torchrun launches them). Compiled only against a CUDA libtorch whose CUDA and NCCL headers
// build.rs finds; `distributed.cpp` calls it when the training device is a GPU.

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <c10/cuda/CUDAFunctions.h>

#include <chrono>

namespace keras_tch {

// The NCCL backend of rank `rank` of `size`, on GPU `device` (made the current device, as
// torch.cuda.set_device(LOCAL_RANK) does before init_process_group). Collectives on it take
// CUDA tensors; `timeout` bounds each one.
c10::intrusive_ptr<c10d::Backend> nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                               int device, std::chrono::milliseconds timeout) {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
}

}  // namespace keras_tch
