/*
 * mcuforge runtime: on-device training kernels (backward pass and SGD with
 * quantization-aware scaling). See kernels.h for the number formats.
 *
 * Everything is integer arithmetic, so a training step leaves the same bits
 * on every target; the NumPy twins (mcuforge/training/kernels.py) equal it.
 * Rounding is "add half, arithmetic shift right" (ties up). Kernels that
 * produce a gradient tensor run twice over it: the first pass finds the
 * integer max-abs of the int64 accumulators, the second writes them rescaled
 * to 14 significant bits (no scratch buffer).
 */
#include "mcuforge/kernels.h"

#define MASTER_FRACTION_BITS 8
#define MASTER_LIMIT (127 * 256)
#define NORM_BITS 14
#define MOMENTUM_BITS 15 /* the SGD momentum as a Q15 integer */
#define GRAD_SUM_MAX_DIFF 30
#define SCALE_SATURATION ((int64_t)1 << 62)

static int64_t asr64(int64_t x, int n)
{
    return x >= 0 ? (x >> n) : ~(~x >> n);
}

static int64_t shl64(int64_t x, int n)
{
    return x * ((int64_t)1 << n);
}

static int32_t bitlen64(int64_t v)
{
    uint64_t a = v < 0 ? (uint64_t)(-(v + 1)) + 1u : (uint64_t)v;
    int32_t n = 0;
    while (a) {
        ++n;
        a >>= 1;
    }
    return n;
}

/* x * 2^-d, rounded (ties up) for d > 0; exact for d <= 0. */
static int64_t shift_round(int64_t x, int32_t d)
{
    if (d > 0) {
        return asr64(x + ((int64_t)1 << (d - 1)), d);
    }
    return shl64(x, -d);
}

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

/* round(acc * multiplier * 2^(shift - 31)) without overflow, saturating at +-2^62. */
static int64_t scale(int64_t acc, int32_t multiplier, int32_t shift)
{
    int32_t r = 31 - shift;
    int32_t d = bitlen64(acc) - 31;
    int64_t prod;
    if (d < 0) {
        d = 0;
    }
    prod = shift_round(acc, d) * (int64_t)multiplier;
    r -= d;
    if (r > 0) {
        return r > 62 ? 0 : shift_round(prod, r);
    }
    if (prod != 0 && bitlen64(prod) - r > 62) {
        return prod < 0 ? -SCALE_SATURATION : SCALE_SATURATION;
    }
    return shl64(prod, -r);
}

static int32_t clamp_delta(int64_t d)
{
    if (d > INT32_MAX) {
        return INT32_MAX;
    }
    if (d < INT32_MIN) {
        return INT32_MIN;
    }
    return (int32_t)d;
}

/* Shift that brings max-abs to 14 significant bits. */
static int32_t norm_shift(int64_t maxabs)
{
    return bitlen64(maxabs) - NORM_BITS;
}

static int16_t norm_value(int64_t acc, int32_t s, int32_t multiplier)
{
    return (int16_t)shift_round(shift_round(acc, s) * (int64_t)multiplier, 31);
}

static int inside(int8_t v, int32_t lo, int32_t hi)
{
    return v > lo && v < hi;
}

/* The end of a two-pass kernel's first pass: the shift, and the exponent. */
static int32_t finish_pass(int64_t maxabs, int32_t exponent, int32_t shift_base, int32_t *out_exp)
{
    int32_t s = maxabs == 0 ? 0 : norm_shift(maxabs);
    *out_exp = exponent + shift_base + s;
    return s;
}

int mcf_train_conv_input_grad(const mcf_train_conv_params *p, const int16_t *grad_out, int32_t grad_exp,
                              const int8_t *output, const int8_t *filter, int16_t *grad_in, int32_t *grad_in_exp)
{
    int32_t pass, iy, ix, ic, ky, kx, oo, s = 0;
    int64_t maxabs = 0;
    if (p->stride_h <= 0 || p->stride_w <= 0 || p->in_per_group <= 0 || p->out_per_group <= 0) {
        return MCF_ERR_ARG;
    }
    for (pass = 0; pass < 2; ++pass) {
        for (iy = 0; iy < p->in_h; ++iy) {
            for (ix = 0; ix < p->in_w; ++ix) {
                for (ic = 0; ic < p->in_c; ++ic) {
                    const int32_t group = ic / p->in_per_group, il = ic % p->in_per_group;
                    int64_t acc = 0;
                    for (ky = 0; ky < p->k_h; ++ky) {
                        const int32_t ty = iy + p->pad_top - ky * p->dilation_h;
                        int32_t oy;
                        if (ty < 0 || ty % p->stride_h != 0) {
                            continue;
                        }
                        oy = ty / p->stride_h;
                        if (oy >= p->out_h) {
                            continue;
                        }
                        for (kx = 0; kx < p->k_w; ++kx) {
                            const int32_t tx = ix + p->pad_left - kx * p->dilation_w;
                            int32_t ox;
                            const int16_t *g;
                            const int8_t *y;
                            if (tx < 0 || tx % p->stride_w != 0) {
                                continue;
                            }
                            ox = tx / p->stride_w;
                            if (ox >= p->out_w) {
                                continue;
                            }
                            g = grad_out + (oy * p->out_w + ox) * p->out_c;
                            y = output + (oy * p->out_w + ox) * p->out_c;
                            for (oo = 0; oo < p->out_per_group; ++oo) {
                                const int32_t o = group * p->out_per_group + oo;
                                if (!inside(y[o], p->act_min, p->act_max)) {
                                    continue;
                                }
                                acc += (int64_t)filter[o * p->w_stride_o + ky * p->w_stride_ky + kx * p->w_stride_kx
                                                       + il * p->w_stride_i] * g[o] * p->grad_scale[o];
                            }
                        }
                    }
                    if (pass == 0) {
                        if (abs64(acc) > maxabs) {
                            maxabs = abs64(acc);
                        }
                    } else {
                        grad_in[(iy * p->in_w + ix) * p->in_c + ic] =
                            maxabs == 0 ? 0 : norm_value(acc, s, p->grad_multiplier);
                    }
                }
            }
        }
        if (pass == 0) {
            s = finish_pass(maxabs, grad_exp, p->grad_shift, grad_in_exp);
        }
    }
    return MCF_OK;
}

/* The master weight (units of s_w / 256) is filter * 256 + fraction: the int8
 * filter is the master rounded, the int8 fraction what rounding left over. */
static void apply_weight(int32_t widx, int32_t fidx, int32_t d, int8_t *fraction, int8_t *filter)
{
    int64_t m = (int64_t)filter[fidx] * (1 << MASTER_FRACTION_BITS) + fraction[widx] - d;
    int32_t f;
    if (m > MASTER_LIMIT) {
        m = MASTER_LIMIT;
    } else if (m < -MASTER_LIMIT) {
        m = -MASTER_LIMIT;
    }
    f = (int32_t)shift_round(m, MASTER_FRACTION_BITS);
    filter[fidx] = (int8_t)f;
    fraction[widx] = (int8_t)(m - (int64_t)f * (1 << MASTER_FRACTION_BITS));
}

static void apply_bias(int32_t *bias, int32_t o, int32_t d)
{
    int64_t b = (int64_t)bias[o] - d;
    bias[o] = clamp_delta(b);
}

/* SGD with momentum: velocity[at] = round(momentum * velocity[at]) + d
 * (momentum in Q15, saturating) is the update; d itself without momentum. */
static int32_t with_momentum(const mcf_train_conv_params *p, int32_t *velocity, int32_t at, int32_t d)
{
    if (velocity == NULL || p->momentum == 0) {
        return d;
    }
    velocity[at] = clamp_delta(shift_round((int64_t)velocity[at] * p->momentum, MOMENTUM_BITS) + d);
    return velocity[at];
}

/* Trained weight number widx (master order: channel, ky, kx, input in group)
 * -> its (o, ky, kx, il) and its index in the filter. */
static int32_t trained_weight(const mcf_train_conv_params *p, int32_t widx, int32_t *o, int32_t *ky, int32_t *kx,
                              int32_t *il)
{
    int32_t t = widx / p->in_per_group;
    *il = widx % p->in_per_group;
    *kx = t % p->k_w;
    t /= p->k_w;
    *ky = t % p->k_h;
    *o = t / p->k_h;
    return *o * p->w_stride_o + *ky * p->w_stride_ky + *kx * p->w_stride_kx + *il * p->w_stride_i;
}

static int32_t trained_weights(const mcf_train_conv_params *p)
{
    return p->weight_multiplier != NULL && p->trained_channels > 0
               ? p->trained_channels * p->k_h * p->k_w * p->in_per_group : 0;
}

int mcf_train_conv_update(const mcf_train_conv_params *p, const int16_t *grad_out, int32_t grad_exp,
                          const int8_t *output, const int8_t *input, int8_t *fraction, int8_t *filter,
                          int32_t *bias, int32_t *velocity, int32_t *delta)
{
    const int32_t pixels = p->out_h * p->out_w;
    const int32_t nw = trained_weights(p);
    int32_t widx;
    if (p->stride_h <= 0 || p->stride_w <= 0 || p->in_per_group <= 0 || p->out_per_group <= 0) {
        return MCF_ERR_ARG;
    }
    if (nw > 0) {
        if (input == NULL || (delta == NULL && (fraction == NULL || filter == NULL))) {
            return MCF_ERR_ARG;
        }
        for (widx = 0; widx < nw; ++widx) {
            int32_t o, ky, kx, il, oy, ox, d;
            const int32_t fidx = trained_weight(p, widx, &o, &ky, &kx, &il);
            const int32_t ic = (o / p->out_per_group) * p->in_per_group + il;
            int64_t acc = 0;
            for (oy = 0; oy < p->out_h; ++oy) {
                const int32_t iy = oy * p->stride_h - p->pad_top + ky * p->dilation_h;
                if (iy < 0 || iy >= p->in_h) {
                    continue;
                }
                for (ox = 0; ox < p->out_w; ++ox) {
                    const int32_t ix = ox * p->stride_w - p->pad_left + kx * p->dilation_w;
                    const int32_t at = (oy * p->out_w + ox) * p->out_c + o;
                    if (ix < 0 || ix >= p->in_w || !inside(output[at], p->act_min, p->act_max)) {
                        continue;
                    }
                    acc += (int64_t)grad_out[at] * (input[(iy * p->in_w + ix) * p->in_c + ic] + p->input_offset);
                }
            }
            d = clamp_delta(scale(acc, p->weight_multiplier[o], p->weight_shift[o] + grad_exp));
            if (delta != NULL) {
                delta[widx] = d;
            } else {
                apply_weight(widx, fidx, with_momentum(p, velocity, widx, d), fraction, filter);
            }
        }
    }
    if (p->bias_multiplier != NULL) {
        int32_t o, px;
        if (delta == NULL && bias == NULL) {
            return MCF_ERR_ARG;
        }
        for (o = 0; o < p->out_c; ++o) {
            int64_t acc = 0;
            int32_t d;
            for (px = 0; px < pixels; ++px) {
                const int32_t at = px * p->out_c + o;
                if (inside(output[at], p->act_min, p->act_max)) {
                    acc += grad_out[at];
                }
            }
            d = clamp_delta(scale(acc, p->bias_multiplier[o], p->bias_shift[o] + grad_exp));
            if (delta != NULL) {
                delta[nw + o] = d;
            } else {
                apply_bias(bias, o, with_momentum(p, velocity, nw + o, d));
            }
        }
    }
    return MCF_OK;
}

int mcf_train_conv_apply(const mcf_train_conv_params *p, const int32_t *delta, int8_t *fraction, int8_t *filter,
                         int32_t *bias, int32_t *velocity)
{
    const int32_t nw = trained_weights(p);
    int32_t widx, o, ky, kx, il;
    if (nw > 0 && (fraction == NULL || filter == NULL)) {
        return MCF_ERR_ARG;
    }
    for (widx = 0; widx < nw; ++widx) {
        apply_weight(widx, trained_weight(p, widx, &o, &ky, &kx, &il), with_momentum(p, velocity, widx, delta[widx]),
                     fraction, filter);
    }
    if (p->bias_multiplier != NULL) {
        int32_t o;
        if (bias == NULL) {
            return MCF_ERR_ARG;
        }
        for (o = 0; o < p->out_c; ++o) {
            apply_bias(bias, o, with_momentum(p, velocity, nw + o, delta[nw + o]));
        }
    }
    return MCF_OK;
}

int mcf_train_mask(const mcf_train_mask_params *p, const int16_t *grad, int32_t grad_exp, const int8_t *output,
                   int16_t *grad_out, int32_t *grad_out_exp)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        grad_out[i] = inside(output[i], p->act_min, p->act_max) ? grad[i] : 0;
    }
    *grad_out_exp = grad_exp;
    return MCF_OK;
}

/* [*start, *end): the rows (or columns) of a pooling window starting at
 * `origin` with `k` taps that lie inside 0..size-1 (padding not counted). */
static void pool_window(int32_t origin, int32_t k, int32_t size, int32_t *start, int32_t *end)
{
    *start = origin < 0 ? 0 : origin;
    *end = origin + k > size ? size : origin + k;
}

int mcf_train_pool_backward(const mcf_train_pool_params *p, const int16_t *grad, int32_t grad_exp,
                            const int8_t *output, int16_t *grad_in, int32_t *grad_in_exp)
{
    int32_t pass, iy, ix, c, oy, ox, s = 0;
    int64_t maxabs = 0;
    if (p->use_mask && output == NULL) {
        return MCF_ERR_ARG;
    }
    for (pass = 0; pass < 2; ++pass) {
        for (iy = 0; iy < p->in_h; ++iy) {
            for (ix = 0; ix < p->in_w; ++ix) {
                for (c = 0; c < p->channels; ++c) {
                    int64_t acc = 0;
                    for (oy = 0; oy < p->out_h; ++oy) {
                        int32_t hs, he;
                        pool_window(oy * p->stride_h - p->pad_top, p->k_h, p->in_h, &hs, &he);
                        if (iy < hs || iy >= he) {
                            continue;
                        }
                        for (ox = 0; ox < p->out_w; ++ox) {
                            int32_t ws, we, n, at;
                            pool_window(ox * p->stride_w - p->pad_left, p->k_w, p->in_w, &ws, &we);
                            if (ix < ws || ix >= we) {
                                continue;
                            }
                            n = (he - hs) * (we - ws);
                            at = (oy * p->out_w + ox) * p->channels + c;
                            if (p->use_mask && !inside(output[at], p->act_min, p->act_max)) {
                                continue;
                            }
                            acc += (int64_t)grad[at] * ((65536 + n / 2) / n);
                        }
                    }
                    if (pass == 0) {
                        if (abs64(acc) > maxabs) {
                            maxabs = abs64(acc);
                        }
                    } else {
                        grad_in[(iy * p->in_w + ix) * p->channels + c] =
                            maxabs == 0 ? 0 : norm_value(acc, s, (int32_t)1 << 30);
                    }
                }
            }
        }
        if (pass == 0) {
            s = finish_pass(maxabs, grad_exp, -15, grad_in_exp);
        }
    }
    return MCF_OK;
}

int mcf_train_grad_sum(const mcf_train_sum_params *p, const int16_t *a, int32_t a_exp, const int16_t *b,
                       int32_t b_exp, int16_t *out, int32_t *out_exp)
{
    int32_t pass, i, diff, s = 0, e;
    int64_t maxabs = 0;
    if (a_exp < b_exp) {
        const int16_t *t = a;
        int32_t te = a_exp;
        a = b;
        a_exp = b_exp;
        b = t;
        b_exp = te;
    }
    diff = a_exp - b_exp;
    e = diff > GRAD_SUM_MAX_DIFF ? a_exp : b_exp;
    for (pass = 0; pass < 2; ++pass) {
        for (i = 0; i < p->size; ++i) {
            const int64_t acc = diff > GRAD_SUM_MAX_DIFF ? (int64_t)a[i] : shl64(a[i], diff) + b[i];
            if (pass == 0) {
                if (abs64(acc) > maxabs) {
                    maxabs = abs64(acc);
                }
            } else {
                out[i] = maxabs == 0 ? 0 : norm_value(acc, s, (int32_t)1 << 30);
            }
        }
        if (pass == 0) {
            s = finish_pass(maxabs, e, 1, out_exp);
        }
    }
    return MCF_OK;
}

int mcf_train_loss(const mcf_train_loss_params *p, const int8_t *probs, int32_t label, int16_t *grad,
                   int32_t *grad_exp, int32_t *label_prob)
{
    int32_t i;
    if (label < 0 || label >= p->classes) {
        return MCF_ERR_ARG;
    }
    for (i = 0; i < p->classes; ++i) {
        grad[i] = (int16_t)(probs[i] + 128 - (i == label ? 256 : 0));
    }
    *grad_exp = -8;
    *label_prob = probs[label] + 128;
    return MCF_OK;
}
