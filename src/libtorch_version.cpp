// The libtorch this process runs, as libtorch itself reports it (`at::show_config()`, the text
// of `torch.__config__.show()`), which tch does not expose. Copied into the caller's buffer;
// never throws into Rust.

#include <ATen/Version.h>

#include <cstddef>
#include <cstring>
#include <exception>
#include <string>

// Writes up to `capacity` bytes of the configuration text to `out` and returns its full
// length (0 on failure).
extern "C" size_t keras_tch_libtorch_config(char* out, size_t capacity) {
    try {
        const std::string text = at::show_config();
        std::memcpy(out, text.data(), text.size() < capacity ? text.size() : capacity);
        return text.size();
    } catch (const std::exception&) {
        return 0;
    }
}
