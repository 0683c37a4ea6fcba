// The two transforms of Winograd's F(4×4, 3×3) for float32 inference (src/graph/winograd_conv.rs
// runs the products between them as one grouped oneDNN convolution, and gives the matrices Bᵀ and
// Aᵀ, built in src/graph/toom_cook.rs). Each is one pass over memory: the input's 6×6 tiles are
// read straight from the channels-last image (the padding is the zeros outside it) into V (tiles,
// 36, C); the products M (tiles, 36, O) go back to 4×4 output tiles with the bias, the residual
// addend and the ReLU applied as they are written. Tiles are shared out between libtorch's threads;
// channels are the innermost loop, in chunks of 16 (channel counts must be multiples of 16),
// which the compiler vectorizes (cloned for AVX-512, AVX2 and plain x86-64, picked at load time).

#pragma GCC optimize("O3")

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "../train/shim_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>

using keras_tch::report;

namespace {

constexpr int64_t kTile = 4;
constexpr int64_t kAlpha = 6;
constexpr int64_t kLanes = 16;

const at::Tensor& tensor(void* handle) { return *static_cast<at::Tensor*>(handle); }

// Where tile `t` (in batch, row, column order) starts and which image it is in.
struct TileGrid {
    int64_t tiles_down, tiles_across;
    int64_t image(int64_t t) const { return t / (tiles_down * tiles_across); }
    int64_t row(int64_t t) const { return (t / tiles_across) % tiles_down * kTile; }
    int64_t column(int64_t t) const { return t % tiles_across * kTile; }
};

struct InputPass {
    const float* x;    // (N, H, W, C)
    const float* b_t;  // 6×6, row by row
    float* v;        // (tiles, 36, C): the block's tiles, from `first`
    int64_t height, width, channels, top, left, first;
    TileGrid grid;
};

// r ← T z for a `rows` × 6 matrix T and six rows z of kLanes values each.
template <int64_t rows>
inline void transform(const float (&t)[rows][kAlpha], const float (*z)[kLanes], float (*r)[kLanes]) {
    for (int64_t a = 0; a < rows; ++a) {
        for (int64_t l = 0; l < kLanes; ++l) {
            float sum = 0.0f;
            for (int64_t i = 0; i < kAlpha; ++i) {
                sum += t[a][i] * z[i][l];
            }
            r[a][l] = sum;
        }
    }
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void input_tiles(const InputPass& p, int64_t begin, int64_t end) {
    alignas(64) float d[kAlpha][kAlpha][kLanes];
    alignas(64) float column[kAlpha][kLanes];
    alignas(64) float done[kAlpha][kLanes];
    alignas(64) float rows[kAlpha][kAlpha][kLanes];
    float b_t[kAlpha][kAlpha];
    std::copy(p.b_t, p.b_t + kAlpha * kAlpha, &b_t[0][0]);
    for (int64_t t = begin; t < end; ++t) {
        const int64_t n = p.grid.image(t), r0 = p.grid.row(t) - p.top, c0 = p.grid.column(t) - p.left;
        for (int64_t c = 0; c < p.channels; c += kLanes) {
            for (int64_t i = 0; i < kAlpha; ++i) {
                for (int64_t j = 0; j < kAlpha; ++j) {
                    const int64_t r = r0 + i, col = c0 + j;
                    if (r >= 0 && r < p.height && col >= 0 && col < p.width) {
                        const float* source = p.x + ((n * p.height + r) * p.width + col) * p.channels + c;
                        std::copy(source, source + kLanes, d[i][j]);
                    } else {
                        std::fill(d[i][j], d[i][j] + kLanes, 0.0f);
                    }
                }
            }
            // Along each row (over j), then along each column (over i).
            for (int64_t i = 0; i < kAlpha; ++i) {
                transform(b_t, d[i], rows[i]);
            }
            for (int64_t b = 0; b < kAlpha; ++b) {
                for (int64_t i = 0; i < kAlpha; ++i) {
                    std::copy(rows[i][b], rows[i][b] + kLanes, column[i]);
                }
                transform(b_t, column, done);
                for (int64_t a = 0; a < kAlpha; ++a) {
                    float* target = p.v + ((t - p.first) * kAlpha * kAlpha + a * kAlpha + b) * p.channels + c;
                    std::copy(done[a], done[a] + kLanes, target);
                }
            }
        }
    }
}

struct OutputPass {
    const float* m;      // (tiles, 36, O): the block's tiles, from `first`
    const float* a_t;    // 4×6, row by row
    const float* bias;   // (O) or null
    const float* other;  // (N, H', W', O) or null
    float* y;            // (N, H', W', O)
    int64_t out_h, out_w, filters, first;
    bool relu;
    TileGrid grid;
};

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void output_tiles(const OutputPass& p, int64_t begin, int64_t end) {
    alignas(64) float m[kAlpha][kAlpha][kLanes];
    alignas(64) float rows[kAlpha][kTile][kLanes];
    alignas(64) float column[kAlpha][kLanes];
    alignas(64) float done[kTile][kLanes];
    float a_t[kTile][kAlpha];
    std::copy(p.a_t, p.a_t + kTile * kAlpha, &a_t[0][0]);
    for (int64_t t = begin; t < end; ++t) {
        const int64_t n = p.grid.image(t), r0 = p.grid.row(t), c0 = p.grid.column(t);
        for (int64_t o = 0; o < p.filters; o += kLanes) {
            for (int64_t a = 0; a < kAlpha; ++a) {
                for (int64_t b = 0; b < kAlpha; ++b) {
                    const float* source = p.m + ((t - p.first) * kAlpha * kAlpha + a * kAlpha + b) * p.filters + o;
                    std::copy(source, source + kLanes, m[a][b]);
                }
            }
            for (int64_t a = 0; a < kAlpha; ++a) {
                transform(a_t, m[a], rows[a]);
            }
            for (int64_t q = 0; q < kTile; ++q) {
                for (int64_t a = 0; a < kAlpha; ++a) {
                    std::copy(rows[a][q], rows[a][q] + kLanes, column[a]);
                }
                transform(a_t, column, done);
                for (int64_t i = 0; i < kTile; ++i) {
                    const int64_t r = r0 + i, col = c0 + q;
                    if (r >= p.out_h || col >= p.out_w) {
                        continue;  // the last tiles reach past the output
                    }
                    const int64_t at = ((n * p.out_h + r) * p.out_w + col) * p.filters + o;
                    for (int64_t l = 0; l < kLanes; ++l) {
                        float value = done[i][l];
                        if (p.bias) value += p.bias[o + l];
                        if (p.other) value += p.other[at + l];
                        if (p.relu) value = std::max(value, 0.0f);
                        p.y[at + l] = value;
                    }
                }
            }
        }
    }
}

// Tiles a thread takes at a time: enough to be worth starting one.
constexpr int64_t kGrain = 4;

}  // namespace

// V (count, 36, C) of tiles `first`..`first + count` of the channels-last float image `x` (N, C,
// H, W), which has `tiles_down` × `tiles_across` output tiles an image and is padded by `top`
// and `left` zeros.
extern "C" int keras_tch_winograd_input(void* x, const float* b_t, int64_t top, int64_t left, int64_t tiles_down, int64_t tiles_across,
                                        int64_t first, int64_t count, void** out, char* error, size_t error_len) {
    try {
        const at::Tensor image = tensor(x).contiguous(at::MemoryFormat::ChannelsLast);
        TORCH_CHECK(image.dim() == 4 && image.scalar_type() == at::kFloat && image.device().is_cpu(),
                    "Winograd: a 4-D float32 image on the CPU, got ", image.sizes(), " ", image.scalar_type(), " on ",
                    image.device());
        const int64_t batch = image.size(0), channels = image.size(1);
        TORCH_CHECK(channels % kLanes == 0, "Winograd: channels in multiples of ", kLanes, ", got ", channels);
        TORCH_CHECK(first >= 0 && count > 0 && first + count <= batch * tiles_down * tiles_across,
                    "Winograd: tiles ", first, "..", first + count, " of ", batch * tiles_down * tiles_across);
        at::Tensor v = at::empty({count, kAlpha * kAlpha, channels}, image.options());
        const InputPass pass{image.data_ptr<float>(), b_t, v.data_ptr<float>(), image.size(2), image.size(3), channels,
                             top, left, first, TileGrid{tiles_down, tiles_across}};
        at::parallel_for(first, first + count, kGrain, [&](int64_t begin, int64_t end) { input_tiles(pass, begin, end); });
        *out = new at::Tensor(std::move(v));
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}

// Writes relu?(Y + bias + other) for tiles `first`.. of the output `y` (N, O, H', W',
// channels-last), Y from the block's products `m` (tiles, 36, O); `bias` and `other` (y's size)
// may be null.
extern "C" int keras_tch_winograd_output(void* m, const float* a_t, void* bias, void* other, int relu, void* y, int64_t tiles_down,
                                         int64_t tiles_across, int64_t first, char* error, size_t error_len) {
    try {
        const at::Tensor products = tensor(m).contiguous();
        at::Tensor& output = *static_cast<at::Tensor*>(y);
        TORCH_CHECK(output.dim() == 4 && output.scalar_type() == at::kFloat && output.device().is_cpu() &&
                        output.is_contiguous(at::MemoryFormat::ChannelsLast),
                    "Winograd: a channels-last float32 output on the CPU, got ", output.sizes());
        const int64_t batch = output.size(0), filters = output.size(1), out_h = output.size(2), out_w = output.size(3);
        TORCH_CHECK(filters % kLanes == 0, "Winograd: filters in multiples of ", kLanes, ", got ", filters);
        TORCH_CHECK(products.dim() == 3 && products.size(1) == kAlpha * kAlpha && products.size(2) == filters &&
                        products.scalar_type() == at::kFloat && products.device().is_cpu(),
                    "Winograd: float32 products (tiles, 36, ", filters, "), got ", products.sizes());
        const int64_t count = products.size(0);
        TORCH_CHECK(first >= 0 && first + count <= batch * tiles_down * tiles_across, "Winograd: tiles ", first, "..",
                    first + count, " of ", batch * tiles_down * tiles_across);
        at::Tensor bias_values = bias ? tensor(bias).contiguous() : at::Tensor();
        TORCH_CHECK(!bias || (bias_values.numel() == filters && bias_values.scalar_type() == at::kFloat &&
                              bias_values.device().is_cpu()),
                    "Winograd: a float32 bias of ", filters, ", got ", bias_values.sizes());
        at::Tensor addend = other ? tensor(other).contiguous(at::MemoryFormat::ChannelsLast) : at::Tensor();
        TORCH_CHECK(!other || (addend.sizes() == output.sizes() && addend.scalar_type() == at::kFloat &&
                               addend.device().is_cpu()),
                    "Winograd: a float32 addend of the output's size ", output.sizes(), ", got ", addend.sizes());
        const OutputPass pass{products.data_ptr<float>(),
                              a_t,
                              bias ? bias_values.data_ptr<float>() : nullptr,
                              other ? addend.data_ptr<float>() : nullptr,
                              output.data_ptr<float>(),
                              out_h,
                              out_w,
                              filters,
                              first,
                              relu != 0,
                              TileGrid{tiles_down, tiles_across}};
        at::parallel_for(first, first + count, kGrain, [&](int64_t begin, int64_t end) { output_tiles(pass, begin, end); });
        return 0;
    } catch (const std::exception& e) {
        return report(e, error, error_len);
    }
}
