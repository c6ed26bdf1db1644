/*
 * mcuforge runtime, arm-dsp: int8 transposed convolution, bit-exact with
 * mcf_transpose_conv_s8 (TFLM reference_integer_ops::TransposeConv; see
 * mcf_transpose_conv.c for the gather form: each output value sums the
 * input pixels and taps with in_y * stride_h - pad_top + k_y == out_y,
 * likewise in x; integer addition makes the sums equal to TFLM's scatter).
 *
 * Per output pixel the taps that reach it are found once (per row the
 * kernel rows of its phase, per column the kernel columns), then 4 output
 * channels at a time (then 2, then 1) run over them: per 4 input channels
 * one load of the input word, two SXTAB16 that add the input offset to its
 * (c0, c2) and (c1, c3) halves, and per output channel one load of the
 * filter word, two SXTB16 and two SMLAD, against some 20 cycles per
 * multiply-accumulate for the portable kernel's per-tap index tests. Input
 * channels past a multiple of 4 one by one.
 * The generator's struct: the portable one (the filter (out_c, k_h, k_w,
 * in_c) as it is), with multiplier and shift per channel and per_channel
 * the requantization mode it proved (kernels_arm_dsp.h: MCF_DSP_FAST_REQUANT
 * when no channel's sum can reach 2^30 and every shift is right, then with
 * one SSAT over the full clamp range; else TFLM's exact form). No scratch.
 */
#include "mcf_dsp.h"

/* Taps of one phase, ceil(k_h / stride_h) x ceil(k_w / stride_w) (3x3 at stride 1, up to 8x8 at stride 2):
 * 128 bytes of stack for the pixel's tap list. */
#define MCF_TCONV_MAX_TAPS 16

int32_t mcf_dsp_transpose_conv_s8_scratch_size(const mcf_transpose_conv_params *p)
{
    (void)p;
    return 0;
}

/* The sums over the pixel's `taps` taps (input pixels xs[t], filter
 * offsets ws[t]) of the dot products with the filter rows w, w + fs, ...
 * of `n` (1, 2 or 4) output channels, into acc[0 .. n-1] (the sums kept in
 * registers across the taps); the input offset packed in off2. */
MCF_INLINE void dots(const int8_t *const *xs, const int32_t *ws, int32_t taps, const int8_t *w, int32_t fs,
                     int32_t in_c, int32_t offset, uint32_t off2, int32_t *acc, int n)
{
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, t, i;
    for (t = 0; t < taps; ++t) {
        const int8_t *x = xs[t], *wt = w + ws[t];
        for (i = 0; i + 4 <= in_c; i += 4) {
            const uint32_t v = mcf_read32(x + i);
            const int32_t x02 = __sxtab16((int32_t)off2, v), x13 = mcf_sxtab16_ror8((int32_t)off2, v);
            uint32_t u = mcf_read32(wt + i);
            s0 = __smlad(mcf_sxtb16_ror8(u), x13, __smlad(__sxtb16(u), x02, s0));
            if (n > 1) {
                u = mcf_read32(wt + fs + i);
                s1 = __smlad(mcf_sxtb16_ror8(u), x13, __smlad(__sxtb16(u), x02, s1));
            }
            if (n > 2) {
                u = mcf_read32(wt + 2 * fs + i);
                s2 = __smlad(mcf_sxtb16_ror8(u), x13, __smlad(__sxtb16(u), x02, s2));
                u = mcf_read32(wt + 3 * fs + i);
                s3 = __smlad(mcf_sxtb16_ror8(u), x13, __smlad(__sxtb16(u), x02, s3));
            }
        }
        for (; i < in_c; ++i) {
            const int32_t xi = x[i] + offset;
            s0 += xi * wt[i];
            if (n > 1) {
                s1 += xi * wt[fs + i];
            }
            if (n > 2) {
                s2 += xi * wt[2 * fs + i];
                s3 += xi * wt[3 * fs + i];
            }
        }
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

static int args_ok(const mcf_transpose_conv_params *p, const int8_t *input, const int8_t *output)
{
    int32_t oc;
    if (p->in_h < 0 || p->in_w < 0 || p->in_c <= 0 || p->out_h < 0 || p->out_w < 0 || p->out_c <= 0 ||
        p->k_h <= 0 || p->k_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || p->act_min < -128 ||
        p->act_max > 127 || p->act_min > p->act_max || p->filter == NULL || p->multiplier == NULL ||
        p->shift == NULL || input == NULL || output == NULL ||
        ((p->k_h + p->stride_h - 1) / p->stride_h) * ((p->k_w + p->stride_w - 1) / p->stride_w) > MCF_TCONV_MAX_TAPS) {
        return 0;
    }
    for (oc = 0; oc < p->out_c; ++oc) {
        if (p->shift[oc] < -31 || p->shift[oc] > 31 || p->multiplier[oc] < 0) {
            return 0;
        }
    }
    return 1;
}

/* Every output pixel in requantization mode `mode`. */
MCF_INLINE void tconv_run(const mcf_transpose_conv_params *p, const int8_t *input, int8_t *output, int mode)
{
    const int32_t in_c = p->in_c, out_c = p->out_c, fs = p->k_h * p->k_w * in_c, offset = p->input_offset;
    const uint32_t off2 = ((uint32_t)offset & 0xFFFFu) | ((uint32_t)offset << 16);
    /* the constants in locals: the int8 output stores could alias anything read through p */
    const int32_t *const bias = p->bias, *const multiplier = p->multiplier, *const shift = p->shift;
    const int32_t output_offset = p->output_offset, act_min = p->act_min, act_max = p->act_max;
    const int32_t k_h = p->k_h, k_w = p->k_w, in_h = p->in_h, in_w = p->in_w;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w;
    const int8_t *const filter = p->filter;
    int32_t taps_w[MCF_TCONV_MAX_TAPS]; /* per tap of the pixel: the filter offset of (ky, kx) */
    const int8_t *taps_x[MCF_TCONV_MAX_TAPS]; /* and its input pixel */
    int32_t oy, ox, oc, ky, kx, n, i, j;
    for (oy = 0; oy < p->out_h; ++oy) {
        /* ty = iy * stride_h + ky: the row's phase py and base by (ty = by * stride_h + py) */
        const int32_t ty = oy + p->pad_top, py = ty >= 0 ? ty % stride_h : 0, by = ty >= 0 ? ty / stride_h : -1;
        int32_t px = 0, bx = 0, tx = p->pad_left; /* tx = bx * stride_w + px, kept without a division */
        if (tx > 0) {
            px = tx % stride_w;
            bx = tx / stride_w;
        }
        for (ox = 0; ox < p->out_w; ++ox, ++tx) {
            if (ox > 0 && tx > 0 && ++px == stride_w) { /* tx - 1 -> tx (from tx = -1: px = bx = 0) */
                px = 0;
                ++bx;
            }
            n = 0;
            for (ky = py, i = by; tx >= 0 && ky < k_h && i >= 0; ky += stride_h, --i) { /* input row i */
                for (kx = px, j = bx; i < in_h && kx < k_w && j >= 0; kx += stride_w, --j) { /* column j */
                    if (j < in_w) {
                        taps_w[n] = (ky * k_w + kx) * in_c;
                        taps_x[n++] = input + (i * in_w + j) * in_c;
                    }
                }
            }
            for (oc = 0; oc < out_c;) {
                const int32_t group = out_c - oc >= 4 ? 4 : (out_c - oc >= 2 ? 2 : 1);
                const int8_t *w = filter + oc * fs;
                int32_t acc[4];
                if (group == 4) {
                    dots(taps_x, taps_w, n, w, fs, in_c, offset, off2, acc, 4);
                } else if (group == 2) {
                    dots(taps_x, taps_w, n, w, fs, in_c, offset, off2, acc, 2);
                } else {
                    dots(taps_x, taps_w, n, w, fs, in_c, offset, off2, acc, 1);
                }
                for (j = 0; j < group; ++j, ++oc) {
                    *output++ = mcf_dsp_out(acc[j] + (bias != NULL ? bias[oc] : 0), multiplier[oc], shift[oc],
                                            output_offset, act_min, act_max, mode);
                }
            }
        }
    }
}

int mcf_dsp_transpose_conv_s8(const mcf_transpose_conv_params *p, const int8_t *input, int8_t *output,
                              int8_t *scratch)
{
    int mode;
    (void)scratch;
    if (!args_ok(p, input, output)) {
        return MCF_ERR_ARG;
    }
    mode = mcf_dsp_mode(p->per_channel, p->act_min, p->act_max);
    if (mode == MCF_DSP_FAST_SAT) {
        tconv_run(p, input, output, MCF_DSP_FAST_SAT);
    } else if (mode == MCF_DSP_FAST) {
        tconv_run(p, input, output, MCF_DSP_FAST);
    } else {
        tconv_run(p, input, output, MCF_DSP_GENERAL);
    }
    return MCF_OK;
}
