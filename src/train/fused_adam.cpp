// One call into libtorch's fused Adam kernel (`at::_fused_adam_`, the kernel behind
// `torch.optim.Adam(fused=True)`), which tch does not expose. It updates every parameter,
// moment and second moment in a single pass per tensor instead of one pass per elementwise op.
// The tensors arrive as tch's handles (`at::Tensor*`); errors come back as text, never as a C++
// exception crossing into Rust.

#include <ATen/ATen.h>
#include <ATen/ops/_fused_adam.h>

#include "shim_support.hpp"

#include <cstddef>
#include <cstring>
#include <exception>
#include <vector>

using keras_tch::report;
using keras_tch::tensors;

extern "C" int keras_tch_fused_adam(void* const* params, void* const* grads, void* const* exp_avgs,
                                    void* const* exp_avg_sqs, size_t count, double step, double lr,
                                    double beta1, double beta2, double eps, char* error,
                                    size_t error_len) {
    try {
        std::vector<at::Tensor> p = tensors(params, count);
        // The kernel only reads the step count, so every tensor can share one.
        std::vector<at::Tensor> steps(count, at::full({}, step, p[0].options().dtype(at::kFloat)));
        at::_fused_adam_(p, tensors(grads, count), tensors(exp_avgs, count), tensors(exp_avg_sqs, count),
                         /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, /*weight_decay=*/0.0, eps,
                         /*amsgrad=*/false, /*maximize=*/false);
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}
