// What every C++ shim of keras-tch does at its boundary with Rust: take tch's tensor handles
// (`at::Tensor*`) and turn a C++ exception into a message in the caller's buffer (an exception
// must never cross into Rust).

#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <vector>

namespace keras_tch {

inline std::vector<at::Tensor> tensors(void* const* handles, size_t count) {
    std::vector<at::Tensor> list;
    list.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        list.push_back(*static_cast<at::Tensor*>(handles[i]));
    }
    return list;
}

// Copies the exception's message into `error` (NUL-terminated) and returns 1, the shims' status
// for a failure.
inline int report(const std::exception& e, char* error, size_t error_len) {
    if (error_len > 0) {
        std::strncpy(error, e.what(), error_len - 1);
        error[error_len - 1] = '\0';
    }
    return 1;
}

}  // namespace keras_tch
