/*
 * mcuforge runtime, private: which taps of a sliding window fall inside the
 * input (shared by the convolution kernels). Not part of the public API.
 */
#ifndef MCF_WINDOW_H
#define MCF_WINDOW_H

#include <stdint.h>

static inline int32_t mcf_ceil_div_nonneg(int32_t a, int32_t b)
{
    return (a + b - 1) / b;
}

/* First tap index k with origin + k * dilation >= 0. */
static inline int32_t mcf_first_tap(int32_t origin, int32_t dilation)
{
    return origin >= 0 ? 0 : mcf_ceil_div_nonneg(-origin, dilation);
}

/* One past the last tap with origin + k * dilation < size, at most taps. */
static inline int32_t mcf_end_tap(int32_t origin, int32_t dilation, int32_t size, int32_t taps)
{
    int32_t end;
    if (origin >= size) {
        return 0;
    }
    end = mcf_ceil_div_nonneg(size - origin, dilation);
    return end < taps ? end : taps;
}

#endif /* MCF_WINDOW_H */
