/*
 * mcuforge runtime: int8 depthwise 2-D convolution, normal and in place.
 *
 * TFLM reference_integer_ops::DepthwiseConvPerChannel
 * (tensorflow/lite/kernels/internal/reference/integer_ops/depthwise_conv.h):
 * output channel oc = ic * depth_multiplier + m reads input channel ic and
 * filter column oc; taps in the padding contribute nothing; bias, then
 * MultiplyByQuantizedMultiplier, output offset and clamp as in conv2d.
 */
#include "mcuforge/kernels.h"
#include "mcf_ring.h"
#include "mcf_window.h"

static int params_valid(const mcf_depthwise_conv2d_params *p)
{
    int32_t i, count;
    if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || p->out_h <= 0 || p->out_w <= 0 ||
        p->depth_multiplier <= 0 || p->out_c != p->in_c * p->depth_multiplier ||
        p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 ||
        p->dilation_h <= 0 || p->dilation_w <= 0 ||
        p->act_min < -128 || p->act_max > 127 || p->act_min > p->act_max ||
        p->filter == NULL || p->multiplier == NULL || p->shift == NULL) {
        return 0;
    }
    count = p->per_channel ? p->out_c : 1;
    for (i = 0; i < count; ++i) {
        if (p->shift[i] < -31 || p->shift[i] > 31) {
            return 0;
        }
    }
    return 1;
}

static int8_t requantize(const mcf_depthwise_conv2d_params *p, int32_t acc, int32_t oc)
{
    const int32_t q = p->per_channel ? oc : 0;
    if (p->bias != NULL) {
        acc += p->bias[oc];
    }
    acc = mcf_multiply_by_quantized_multiplier(acc, p->multiplier[q], (int)p->shift[q]);
    acc += p->output_offset;
    acc = acc < p->act_min ? p->act_min : acc;
    acc = acc > p->act_max ? p->act_max : acc;
    return (int8_t)acc;
}

int mcf_depthwise_conv2d_s8(const mcf_depthwise_conv2d_params *p,
                            const int8_t *input, int8_t *output)
{
    const int32_t in_w = p->in_w, in_c = p->in_c, out_c = p->out_c;
    const int32_t multiplier = p->depth_multiplier;
    const int32_t input_offset = p->input_offset;
    int32_t oy, ox, ic, m, ky, kx;

    if (!params_valid(p) || input == NULL || output == NULL) {
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
            int8_t *out = output + (oy * p->out_w + ox) * out_c;
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < multiplier; ++m) {
                    const int32_t oc = ic * multiplier + m;
                    int32_t acc = 0;
                    for (ky = ky_start; ky < ky_end; ++ky) {
                        const int32_t iy = y0 + ky * p->dilation_h;
                        const int8_t *in_row = input + iy * in_w * in_c + ic;
                        const int8_t *f_row = p->filter + ky * p->k_w * out_c + oc;
                        for (kx = kx_start; kx < kx_end; ++kx) {
                            const int32_t ix = x0 + kx * p->dilation_w;
                            acc += (int32_t)f_row[kx * out_c] *
                                   ((int32_t)in_row[ix * in_c] + input_offset);
                        }
                    }
                    out[oc] = requantize(p, acc, oc);
                }
            }
        }
    }
    return MCF_OK;
}

/*
 * In-place variant: a ring of input rows per channel.
 *
 * Output pixel number n (row-major, n = oy * out_w + ox) of channel c is
 * stored where input pixel number n of channel c was, so producing channel c
 * destroys only channel c, and output row oy destroys input rows
 * 0 .. W(oy) = ((oy + 1) * out_w - 1) / in_w, which is < in_h because
 * out_h * out_w <= in_h * in_w.
 *
 * Output row oy reads input rows inside [lo(oy), need(oy)] with
 *   lo(oy)   = max(oy * stride_h - pad_top, 0)
 *   need(oy) = min(oy * stride_h - pad_top + (k_h - 1) * dilation_h, in_h - 1)
 * and no row above last = need(out_h - 1) is ever read. Before output row
 * oy is written, every input row up to
 *   hi(oy) = max(need(oy), min(W(oy), last))
 * that is still needed (>= lo(oy)) is copied into the ring, at slot
 * row % rows, then the row is computed from the ring alone.
 *
 * Why this is safe: lo, need, W and so hi never decrease with oy (stride
 * >= 1). (1) A row copied at step oy is > hi(oy - 1) >= min(W(oy - 1), last),
 * and a row <= last that earlier steps overwrote is <= W(oy - 1), so rows
 * are copied before they are overwritten; rows > last are never read.
 * (2) Rows read at step oy lie in [lo(oy), hi(oy)], were copied at the first
 * step t <= oy with hi(t) >= row (lo(t) <= lo(oy) <= row, so not skipped).
 * (3) A slot is reused for row r + rows only at a step t with
 * r + rows <= hi(t); if r were still needed at some step s >= t then
 * lo(s) <= r, hence hi(s) - lo(s) + 1 >= rows + 1, contradicting
 * rows = max over oy of (hi(oy) - lo(oy) + 1). So rows * in_w bytes of
 * scratch suffice, and never more than in_h * in_w (the whole channel).
 */
static int inplace_valid(const mcf_depthwise_conv2d_params *p)
{
    return params_valid(p) && p->depth_multiplier == 1 &&
           (int64_t)p->out_h * p->out_w <= (int64_t)p->in_h * p->in_w;
}

int32_t mcf_depthwise_conv2d_s8_inplace_scratch_size(const mcf_depthwise_conv2d_params *p)
{
    if (!inplace_valid(p)) {
        return MCF_ERR_ARG;
    }
    return mcf_ring_rows(p) * p->in_w;
}

int mcf_depthwise_conv2d_s8_inplace(const mcf_depthwise_conv2d_params *p,
                                    int8_t *buffer, int8_t *scratch)
{
    const int32_t in_w = p->in_w, channels = p->in_c;
    const int32_t input_offset = p->input_offset;
    int32_t rows, last, slot_step, c;

    if (!inplace_valid(p) || buffer == NULL) {
        return MCF_ERR_ARG;
    }
    rows = mcf_ring_rows(p);
    if (rows > 0 && scratch == NULL) {
        return MCF_ERR_ARG;
    }
    last = mcf_ring_last(p);
    slot_step = rows > 0 ? p->dilation_h % rows : 0;

    for (c = 0; c < channels; ++c) {
        const int8_t *filter = p->filter + c;
        int32_t copied = -1; /* rows <= copied were copied or are never needed */
        int32_t oy, ox, ky, kx, r, x;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t ky_start = mcf_first_tap(y0, p->dilation_h);
            const int32_t ky_end = mcf_end_tap(y0, p->dilation_h, p->in_h, p->k_h);
            int32_t lo, hi, first_slot = 0;
            mcf_ring_bounds(p, last, oy, &lo, &hi);

            /* Save the rows this output row reads or overwrites. */
            for (r = copied + 1 > lo ? copied + 1 : lo; r <= hi; ++r) {
                const int8_t *src = buffer + r * in_w * channels + c;
                int8_t *dst = scratch + (r % rows) * in_w;
                for (x = 0; x < in_w; ++x) {
                    dst[x] = src[x * channels];
                }
            }
            copied = hi > copied ? hi : copied;

            if (ky_start < ky_end) {
                first_slot = (y0 + ky_start * p->dilation_h) % rows;
            }
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t kx_start = mcf_first_tap(x0, p->dilation_w);
                const int32_t kx_end = mcf_end_tap(x0, p->dilation_w, in_w, p->k_w);
                int32_t slot = first_slot;
                int32_t acc = 0;
                for (ky = ky_start; ky < ky_end; ++ky) {
                    const int8_t *in_row = scratch + slot * in_w;
                    const int8_t *f_row = filter + ky * p->k_w * channels;
                    for (kx = kx_start; kx < kx_end; ++kx) {
                        acc += (int32_t)f_row[kx * channels] *
                               ((int32_t)in_row[x0 + kx * p->dilation_w] + input_offset);
                    }
                    slot += slot_step;
                    if (slot >= rows) {
                        slot -= rows;
                    }
                }
                buffer[(oy * p->out_w + ox) * channels + c] = requantize(p, acc, c);
            }
        }
    }
    return MCF_OK;
}
