/*
 * mcuforge runtime: 16x8 convolutions (int16 activations, int8 weights,
 * int64 bias): conv2d, depthwise conv2d, fully connected, transpose conv.
 *
 * TFLM reference_integer_ops::ConvPerChannel<int64_t>,
 * DepthwiseConvPerChannel<int64_t>, FullyConnected<int64_t> and
 * TransposeConv<int64_t> (16x8): acc = sum filter * input in int64 (taps in
 * the padding add nothing; zero point 0), acc += bias[oc],
 * out = MultiplyByQuantizedMultiplier(acc (int64), multiplier[oc], shift[oc]),
 * clamped to [act_min, act_max]. No output offset: the zero point is 0.
 * The transpose conv gathers for each output value the products TFLM
 * scatters into its int64 scratch (integer sums: the same values).
 */
#include "mcuforge/kernels_s16.h"
#include "mcf_s16.h"
#include "mcf_window.h"

int32_t mcf_multiply_by_quantized_multiplier_64(int64_t x, int32_t multiplier, int shift)
{
    return mcf_s16_requantize_64(x, multiplier, shift);
}

static int quant_valid(const int32_t *multiplier, const int32_t *shift, int32_t count)
{
    int32_t i;
    if (multiplier == NULL || shift == NULL) {
        return 0;
    }
    for (i = 0; i < count; ++i) {
        if (multiplier[i] < 0 || shift[i] < -31 || shift[i] > 7) {
            return 0;
        }
    }
    return 1;
}

static int16_t requantize(int64_t acc, const int64_t *bias, const int32_t *multiplier, const int32_t *shift,
                          int32_t oc, int32_t q, int32_t act_min, int32_t act_max)
{
    int32_t out;
    if (bias != NULL) {
        acc += bias[oc];
    }
    out = mcf_multiply_by_quantized_multiplier_64(acc, multiplier[q], (int)shift[q]);
    out = out < act_min ? act_min : out;
    out = out > act_max ? act_max : out;
    return (int16_t)out;
}

static int act_valid(int32_t act_min, int32_t act_max)
{
    return act_min >= -32768 && act_max <= 32767 && act_min <= act_max;
}

int mcf_conv2d_s16(const mcf_conv2d_s16_params *p, const int16_t *input, int16_t *output)
{
    const int32_t in_w = p->in_w, in_c = p->in_c, out_c = p->out_c, k_w = p->k_w;
    const int32_t filter_row = k_w * in_c;
    const int32_t filter_size = p->k_h * filter_row;
    int32_t oy, ox, oc, ky, kx, ic;

    if (p->in_h <= 0 || in_w <= 0 || in_c <= 0 || p->out_h <= 0 || p->out_w <= 0 || out_c <= 0 ||
        p->k_h <= 0 || k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || p->dilation_h <= 0 ||
        p->dilation_w <= 0 || !act_valid(p->act_min, p->act_max) || p->filter == NULL || input == NULL ||
        output == NULL || !quant_valid(p->multiplier, p->shift, p->per_channel ? out_c : 1)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
        const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t kx_start = mcf_first_tap(x0, p->dilation_w);
            const int32_t kx_end = mcf_end_tap(x0, p->dilation_w, in_w, k_w);
            int16_t *out = output + (oy * p->out_w + ox) * out_c;
            for (oc = 0; oc < out_c; ++oc) {
                const int8_t *filter = p->filter + oc * filter_size;
                int64_t acc = 0;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int16_t *in_row = input + ((y0 + ky * p->dilation_h) * in_w) * in_c;
                    const int8_t *f_row = filter + ky * filter_row;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        const int16_t *in_px = in_row + (x0 + kx * p->dilation_w) * in_c;
                        const int8_t *f_px = f_row + kx * in_c;
                        int32_t sum = 0; /* one pixel: |sum| <= in_c * 2^22, exact in int32 for in_c < 512 */
                        if (in_c < 512) {
                            for (ic = 0; ic < in_c; ++ic) {
                                sum += (int32_t)f_px[ic] * in_px[ic];
                            }
                            acc += sum;
                        } else {
                            for (ic = 0; ic < in_c; ++ic) {
                                acc += (int32_t)f_px[ic] * in_px[ic];
                            }
                        }
                    }
                }
                out[oc] = requantize(acc, p->bias, p->multiplier, p->shift, oc, p->per_channel ? oc : 0,
                                     p->act_min, p->act_max);
            }
        }
    }
    return MCF_OK;
}

int mcf_depthwise_conv2d_s16(const mcf_depthwise_conv2d_s16_params *p, const int16_t *input, int16_t *output)
{
    const int32_t in_w = p->in_w, in_c = p->in_c, out_c = p->out_c, mult = p->depth_multiplier;
    int32_t oy, ox, oc, ky, kx;

    if (p->in_h <= 0 || in_w <= 0 || in_c <= 0 || p->out_h <= 0 || p->out_w <= 0 || mult <= 0 ||
        out_c != in_c * mult || p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
        p->dilation_h <= 0 || p->dilation_w <= 0 || !act_valid(p->act_min, p->act_max) || p->filter == NULL ||
        input == NULL || output == NULL || !quant_valid(p->multiplier, p->shift, p->per_channel ? out_c : 1)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_top;
        const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
        const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_left;
            const int32_t kx_start = mcf_first_tap(x0, p->dilation_w);
            const int32_t kx_end = mcf_end_tap(x0, p->dilation_w, in_w, p->k_w);
            int16_t *out = output + (oy * p->out_w + ox) * out_c;
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t ic = oc / mult;
                int64_t acc = 0;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int32_t iy = y0 + ky * p->dilation_h;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        const int32_t ix = x0 + kx * p->dilation_w;
                        acc += (int32_t)p->filter[(ky * p->k_w + kx) * out_c + oc] * input[(iy * in_w + ix) * in_c + ic];
                    }
                }
                out[oc] = requantize(acc, p->bias, p->multiplier, p->shift, oc, p->per_channel ? oc : 0,
                                     p->act_min, p->act_max);
            }
        }
    }
    return MCF_OK;
}

int mcf_fully_connected_s16(const mcf_fully_connected_s16_params *p, const int16_t *input, int16_t *output)
{
    const int32_t k = p->in_features, n = p->out_features;
    int32_t r, o, i;

    if (p->rows <= 0 || k <= 0 || n <= 0 || !act_valid(p->act_min, p->act_max) || p->filter == NULL ||
        input == NULL || output == NULL || !quant_valid(p->multiplier, p->shift, p->per_channel ? n : 1)) {
        return MCF_ERR_ARG;
    }
    for (r = 0; r < p->rows; ++r) {
        const int16_t *in = input + r * k;
        for (o = 0; o < n; ++o) {
            const int8_t *w = p->filter + o * k;
            int64_t acc = 0;
            for (i = 0; i < k; ++i) {
                acc += (int32_t)w[i] * in[i];
            }
            *output++ = requantize(acc, p->bias, p->multiplier, p->shift, o, p->per_channel ? o : 0,
                                   p->act_min, p->act_max);
        }
    }
    return MCF_OK;
}

int mcf_transpose_conv_s16(const mcf_transpose_conv_s16_params *p, const int16_t *input, int16_t *output)
{
    int32_t oy, ox, oc, ky, kx, ic;

    if (p->in_h < 0 || p->in_w < 0 || p->in_c <= 0 || p->out_h < 0 || p->out_w < 0 || p->out_c <= 0 ||
        p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || !act_valid(p->act_min, p->act_max) ||
        p->filter == NULL || input == NULL || output == NULL ||
        !quant_valid(p->multiplier, p->shift, p->per_channel ? p->out_c : 1)) {
        return MCF_ERR_ARG;
    }
    for (oy = 0; oy < p->out_h; ++oy) {
        for (ox = 0; ox < p->out_w; ++ox) {
            for (oc = 0; oc < p->out_c; ++oc) {
                int64_t acc = 0;
                for (ky = 0; ky < p->k_h; ++ky) {
                    const int32_t ty = oy + p->pad_top - ky;
                    int32_t iy;
                    if (ty < 0 || ty % p->stride_h != 0) {
                        continue;
                    }
                    iy = ty / p->stride_h;
                    if (iy >= p->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < p->k_w; ++kx) {
                        const int32_t tx = ox + p->pad_left - kx;
                        const int16_t *in;
                        const int8_t *w;
                        int32_t ix;
                        if (tx < 0 || tx % p->stride_w != 0) {
                            continue;
                        }
                        ix = tx / p->stride_w;
                        if (ix >= p->in_w) {
                            continue;
                        }
                        in = input + (iy * p->in_w + ix) * p->in_c;
                        w = p->filter + ((oc * p->k_h + ky) * p->k_w + kx) * p->in_c;
                        for (ic = 0; ic < p->in_c; ++ic) {
                            acc += (int32_t)w[ic] * in[ic];
                        }
                    }
                }
                *output++ = requantize(acc, p->bias, p->multiplier, p->shift, oc, p->per_channel ? oc : 0,
                                       p->act_min, p->act_max);
            }
        }
    }
    return MCF_OK;
}
