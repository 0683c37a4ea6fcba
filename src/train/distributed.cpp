// PyTorch's own distributed engine (c10d: a TCPStore rendezvous and a Gloo process group, or an
// NCCL one on GPUs — `distributed_nccl.cpp`), which tch does not expose: the collectives
// data-parallel training needs, on the libtorch we link.
// The tensors arrive as tch's handles (`at::Tensor*`); every C++ exception comes back as text,
// never crossing into Rust. Each collective waits at most the group's timeout.

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/custom_function.h>

#include "shim_support.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct ProcessGroup {
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::Backend> group;
    std::chrono::milliseconds timeout;
    // Where the collectives' buffers must be: the CPU for Gloo, the rank's GPU for NCCL.
    at::Device device;
};

struct StoreServer {
    c10::intrusive_ptr<c10d::TCPStore> store;
};

using keras_tch::report;
using keras_tch::tensors;

void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
    if (!work->wait(timeout)) {
        throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + " ms");
    }
}

// Gloo's collectives take one tensor per device, all of one shape; a model's weights are many
// tensors of many shapes. So each dtype's tensors travel as one flat buffer on the group's
// device, copied back after.
template <typename Collective>
void flat_by_dtype(const std::vector<at::Tensor>& list, at::Device device, Collective collective) {
    std::map<at::ScalarType, std::vector<at::Tensor>> groups;
    for (const auto& tensor : list) {
        groups[tensor.scalar_type()].push_back(tensor);
    }
    for (auto& [dtype, group] : groups) {
        std::vector<at::Tensor> flat_parts;
        flat_parts.reserve(group.size());
        for (const auto& tensor : group) {
            flat_parts.push_back(tensor.reshape({-1}).to(device));
        }
        at::Tensor flat = at::cat(flat_parts);
        std::vector<at::Tensor> one{flat};
        collective(one);
        int64_t offset = 0;
        for (auto& tensor : group) {
            int64_t n = tensor.numel();
            tensor.copy_(flat.narrow(0, offset, n).view(tensor.sizes()));
            offset += n;
        }
    }
}

// `tensor` (on the group's device) summed over the ranks, in place.
void all_reduce_sum_in_place(ProcessGroup* pg, at::Tensor& tensor) {
    std::vector<at::Tensor> one{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = pg->timeout;
    wait(pg->group->allreduce(one, options), pg->timeout);
}

// A sum over the ranks that autograd sees through: every rank's result depends on every rank's
// input, so the gradient reaching each rank's input is the sum of the ranks' gradients of the
// result (the backward is the same all-reduce). What synchronized BatchNorm's statistics need.
// The group outlives the graph (it lives for the whole training run), so it travels as an
// address.
struct CrossReplicaSum : public torch::autograd::Function<CrossReplicaSum> {
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input, int64_t group) {
        ctx->saved_data["group"] = group;
        auto* pg = reinterpret_cast<ProcessGroup*>(group);
        at::Tensor sum = input.to(pg->device, /*non_blocking=*/false, /*copy=*/true).contiguous();
        all_reduce_sum_in_place(pg, sum);
        return sum.to(input.device());
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grads) {
        auto* pg = reinterpret_cast<ProcessGroup*>(ctx->saved_data["group"].toInt());
        const at::Tensor& grad = grads.at(0);
        at::Tensor sum = grad.to(pg->device, /*non_blocking=*/false, /*copy=*/true).contiguous();
        all_reduce_sum_in_place(pg, sum);
        return {sum.to(grad.device()), at::Tensor()};
    }
};

}  // namespace

#ifdef KERAS_TCH_WITH_NCCL
namespace keras_tch {
c10::intrusive_ptr<c10d::Backend> nccl_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                               int device, std::chrono::milliseconds timeout);
}
#endif

// The store a launcher hosts (torchrun's agent, or a test in its place), on an already bound
// listening socket, so that no other process can take the port in between.
extern "C" int keras_tch_store_server_new(int listen_fd, uint16_t port, int64_t timeout_ms, void** out,
                                          char* error, size_t error_len) {
    try {
        c10d::TCPStoreOptions options;
        options.port = port;
        options.isServer = true;
        options.waitWorkers = false;
        options.masterListenFd = listen_fd;
        options.timeout = std::chrono::milliseconds(timeout_ms);
        *out = new StoreServer{c10::make_intrusive<c10d::TCPStore>("127.0.0.1", options)};
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

extern "C" void keras_tch_store_server_free(void* server) { delete static_cast<StoreServer*>(server); }

// Joins the group: connects to the store at host:port (hosting it when `host_store`, as rank 0
// does without a launcher's store), under the key prefix `prefix` (empty for none), and builds
// the Gloo group on the network interface `interface` (empty: the host name's address, as
// torch.distributed does without GLOO_SOCKET_IFNAME) — or, given a GPU (`cuda_device` >= 0),
// the NCCL group on it.
extern "C" int keras_tch_process_group_new(const char* host, uint16_t port, int rank, int world_size,
                                           int host_store, const char* prefix, const char* interface,
                                           int cuda_device, int64_t timeout_ms, void** out, char* error,
                                           size_t error_len) {
    try {
        auto timeout = std::chrono::milliseconds(timeout_ms);
        c10d::TCPStoreOptions store_options;
        store_options.port = port;
        store_options.isServer = host_store != 0;
        store_options.numWorkers = world_size;
        store_options.waitWorkers = true;  // on every rank, or the job hangs
        store_options.timeout = timeout;
        c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(host, store_options);
        if (std::strlen(prefix) > 0) {
            store = c10::make_intrusive<c10d::PrefixStore>(prefix, store);
        }
        if (cuda_device >= 0) {
#ifdef KERAS_TCH_WITH_NCCL
            auto group = keras_tch::nccl_backend(store, rank, world_size, cuda_device, timeout);
            *out = new ProcessGroup{store, group, timeout, at::Device(at::kCUDA, cuda_device)};
            return 0;
#else
            throw std::runtime_error(
                "this keras-tch was built without NCCL (against a CPU libtorch, or without NCCL's and "
                "CUDA's headers): build it against the CUDA libtorch of `scripts/setup.sh --cuda`");
#endif
        }
        auto options = c10d::ProcessGroupGloo::Options::create(timeout);
        options->devices.push_back(std::strlen(interface) > 0
                                       ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                       : c10d::ProcessGroupGloo::createDefaultDevice());
        auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
        *out = new ProcessGroup{store, group, timeout, at::Device(at::kCPU)};
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

extern "C" void keras_tch_process_group_free(void* group) { delete static_cast<ProcessGroup*>(group); }

// Sums each tensor over the ranks, in place.
extern "C" int keras_tch_all_reduce_sum(void* handle, void* const* handles, size_t count, char* error,
                                        size_t error_len) {
    try {
        at::NoGradGuard no_grad;  // the tensors may be weights that require gradients
        auto* pg = static_cast<ProcessGroup*>(handle);
        flat_by_dtype(tensors(handles, count), pg->device, [&](std::vector<at::Tensor>& one) { all_reduce_sum_in_place(pg, one.at(0)); });
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

// A new tensor holding `input` summed over the ranks, differentiably (`CrossReplicaSum`).
extern "C" int keras_tch_cross_replica_sum(void* handle, void* input, void** out, char* error, size_t error_len) {
    try {
        auto group = reinterpret_cast<int64_t>(handle);
        *out = new at::Tensor(CrossReplicaSum::apply(*static_cast<at::Tensor*>(input), group));
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

// Copies each tensor of rank `root` into the same tensor of every other rank.
extern "C" int keras_tch_broadcast(void* handle, void* const* handles, size_t count, int root, char* error,
                                   size_t error_len) {
    try {
        at::NoGradGuard no_grad;  // the tensors may be weights that require gradients
        auto* pg = static_cast<ProcessGroup*>(handle);
        flat_by_dtype(tensors(handles, count), pg->device, [&](std::vector<at::Tensor>& one) {
            c10d::BroadcastOptions options;
            options.rootRank = root;
            options.timeout = pg->timeout;
            wait(pg->group->broadcast(one, options), pg->timeout);
        });
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

// Returns once every rank has called it.
extern "C" int keras_tch_barrier(void* handle, char* error, size_t error_len) {
    try {
        auto* pg = static_cast<ProcessGroup*>(handle);
        c10d::BarrierOptions options;
        options.timeout = pg->timeout;
        wait(pg->group->barrier(options), pg->timeout);
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}
