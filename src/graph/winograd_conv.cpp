// The two transforms of Winograd's F(4×4, 3×3) for float32 inference (src/graph/winograd_conv.rs
// runs the products between them as one grouped oneDNN convolution, and gives the matrices Bᵀ and
// Aᵀ, built in src/graph/toom_cook.rs). Each is one pass over memory: the input's 6×6 tiles are
// read straight from the channels-last image (the padding is the zeros outside it) into V (tiles,
// 36, C); the products M (tiles, 36, O) go back to 4×4 output tiles with the bias, the residual
// addend and the ReLU applied as they are written. Tiles are shared out between libtorch's threads;
// channels go 16 at a time as one vector value (channel counts must be multiples of 16), and a
// tile's two passes keep their values in registers (cloned for AVX-512, AVX2 and plain x86-64,
// picked at load time). Written that way, the transforms took 0.58–0.73× (input) and 0.33–0.76×
// (output) the time of the earlier version, which went through arrays on the stack (ResNet50's
// stage 2 at batches 8 and 1 on an AMD EPYC, each relative to the products' time in its run).

#pragma GCC optimize("O3")

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "../train/shim_support.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

// kLanes floats as one value (one AVX-512 register, two AVX2 ones, ...): the transforms are
// written on these so that every step is one vector multiply-add and the 6×6 tile stays in
// registers, with no copies through the stack between the two passes of a transform.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

inline Lanes load(const float* p) {
    Lanes v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

inline void store(float* p, const Lanes& v) { std::memcpy(p, &v, sizeof v); }

// Σ_i t[i] z[i] over six values.
inline Lanes combine(const float* t, const Lanes (&z)[kAlpha]) {
    Lanes sum = t[0] * z[0];
    for (int64_t i = 1; i < kAlpha; ++i) {
        sum += t[i] * z[i];
    }
    return sum;
}

__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
void input_tiles(const InputPass& p, int64_t begin, int64_t end) {
    float b_t[kAlpha][kAlpha];
    std::copy(p.b_t, p.b_t + kAlpha * kAlpha, &b_t[0][0]);
    const Lanes zero = {};
    for (int64_t t = begin; t < end; ++t) {
        const int64_t n = p.grid.image(t), r0 = p.grid.row(t) - p.top, c0 = p.grid.column(t) - p.left;
        float* tile = p.v + (t - p.first) * kAlpha * kAlpha * p.channels;
        for (int64_t c = 0; c < p.channels; c += kLanes) {
            // Along each row of the 6×6 input tile (over j): rows[b][i] = Σ_j Bᵀ[b][j] d[i][j].
            Lanes rows[kAlpha][kAlpha];
            for (int64_t i = 0; i < kAlpha; ++i) {
                Lanes d[kAlpha];
                const int64_t r = r0 + i;
                for (int64_t j = 0; j < kAlpha; ++j) {
                    const int64_t col = c0 + j;
                    const bool inside = r >= 0 && r < p.height && col >= 0 && col < p.width;
                    d[j] = inside ? load(p.x + ((n * p.height + r) * p.width + col) * p.channels + c) : zero;
                }
                for (int64_t b = 0; b < kAlpha; ++b) {
                    rows[b][i] = combine(b_t[b], d);
                }
            }
            // Then along each column (over i): V[a][b] = Σ_i Bᵀ[a][i] rows[b][i].
            for (int64_t b = 0; b < kAlpha; ++b) {
                for (int64_t a = 0; a < kAlpha; ++a) {
                    store(tile + (a * kAlpha + b) * p.channels + c, combine(b_t[a], rows[b]));
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
    float a_t[kTile][kAlpha];
    std::copy(p.a_t, p.a_t + kTile * kAlpha, &a_t[0][0]);
    const Lanes zero = {};
    for (int64_t t = begin; t < end; ++t) {
        const int64_t n = p.grid.image(t), r0 = p.grid.row(t), c0 = p.grid.column(t);
        const float* tile = p.m + (t - p.first) * kAlpha * kAlpha * p.filters;
        for (int64_t o = 0; o < p.filters; o += kLanes) {
            // Along each row of M's 6×6 (over b): rows[q][a] = Σ_b Aᵀ[q][b] M[a][b].
            Lanes rows[kTile][kAlpha];
            for (int64_t a = 0; a < kAlpha; ++a) {
                Lanes m[kAlpha];
                for (int64_t b = 0; b < kAlpha; ++b) {
                    m[b] = load(tile + (a * kAlpha + b) * p.filters + o);
                }
                for (int64_t q = 0; q < kTile; ++q) {
                    rows[q][a] = combine(a_t[q], m);
                }
            }
            const Lanes bias = p.bias ? load(p.bias + o) : zero;
            // Then along each column (over a), into the output's 4×4 tile: Y[i][q] = Σ_a Aᵀ[i][a] rows[q][a].
            for (int64_t q = 0; q < kTile; ++q) {
                for (int64_t i = 0; i < kTile; ++i) {
                    const int64_t r = r0 + i, col = c0 + q;
                    if (r >= p.out_h || col >= p.out_w) {
                        continue;  // the last tiles reach past the output
                    }
                    const int64_t at = ((n * p.out_h + r) * p.out_w + col) * p.filters + o;
                    Lanes value = combine(a_t[i], rows[q]) + bias;
                    if (p.other) value += load(p.other + at);
                    if (p.relu) value = value > zero ? value : zero;
                    store(p.y + at, value);
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
