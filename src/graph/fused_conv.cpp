// libtorch's fused oneDNN convolutions for inference, which tch does not expose: the operators
// `mkldnn::_convolution_pointwise` (a convolution with its ReLU as a post-op) and its `.binary`
// overload (a convolution, then `+ other`, then an optional ReLU, in one pass), called through
// the dispatcher, and `at::mkldnn_reorder_conv2d_weight`, which packs a kernel once into the
// blocked layout oneDNN picks for one input shape. The activations run channels-last. Tensors
// arrive as tch's handles (`at::Tensor*`); a result goes back as a new handle that Rust owns;
// errors come back as text, never as a C++ exception crossing into Rust.

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>

#include "../train/shim_support.hpp"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

using keras_tch::report;

namespace {

std::vector<int64_t> pair(const int64_t* values) { return {values[0], values[1]}; }

const at::Tensor& tensor(void* handle) { return *static_cast<at::Tensor*>(handle); }

}  // namespace

// relu(conv(x) + other) (or without the ReLU, or without `other` when it is null), with the
// kernel `weight` (dense OIHW, or packed by keras_tch_onednn_pack_conv_weight), `bias` (may be
// null), symmetric `padding`, the given `stride` and `dilation` (each two values) and `groups`.
extern "C" int keras_tch_onednn_conv(void* x, void* other, void* weight, void* bias, const int64_t* padding,
                                     const int64_t* stride, const int64_t* dilation, int64_t groups, int relu,
                                     void** out, char* error, size_t error_len) {
    try {
        at::NoGradGuard no_grad;
        at::Tensor input = tensor(x).contiguous(at::MemoryFormat::ChannelsLast);
        c10::IValue bias_value = bias ? c10::IValue(tensor(bias)) : c10::IValue();
        torch::jit::Stack stack;
        if (other == nullptr) {
            static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
            stack = {input,
                     tensor(weight),
                     bias_value,
                     pair(padding),
                     pair(stride),
                     pair(dilation),
                     groups,
                     std::string(relu ? "relu" : "none"),
                     c10::List<std::optional<at::Scalar>>(),
                     c10::IValue()};
            op.callBoxed(&stack);
        } else {
            static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "binary");
            at::Tensor addend = tensor(other).contiguous(at::MemoryFormat::ChannelsLast);
            stack = {input,
                     addend,
                     tensor(weight),
                     bias_value,
                     pair(padding),
                     pair(stride),
                     pair(dilation),
                     groups,
                     std::string("add"),
                     c10::IValue(),
                     relu ? c10::IValue(std::string("relu")) : c10::IValue(),
                     c10::List<std::optional<at::Scalar>>(),
                     c10::IValue()};
            op.callBoxed(&stack);
        }
        *out = new at::Tensor(stack.at(0).toTensor());
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

// `weight` (OIHW float) packed for inputs of `input_size` (N, C, H, W, channels-last), in
// `groups` groups.
extern "C" int keras_tch_onednn_pack_conv_weight(void* weight, const int64_t* padding, const int64_t* stride,
                                                 const int64_t* dilation, int64_t groups, const int64_t* input_size,
                                                 void** out, char* error, size_t error_len) {
    try {
        at::NoGradGuard no_grad;
        std::vector<int64_t> sizes(input_size, input_size + 4);
        at::Tensor packed = at::mkldnn_reorder_conv2d_weight(tensor(weight).contiguous().to_mkldnn(), pair(padding), pair(stride),
                                                             pair(dilation), groups, sizes);
        *out = new at::Tensor(std::move(packed));
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}
