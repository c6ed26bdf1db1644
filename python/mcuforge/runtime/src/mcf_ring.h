/*
 * mcuforge runtime, private: the ring of input rows of the in-place
 * depthwise kernels (portable and arm-dsp); mcf_depthwise_conv2d.c proves it
 * safe. Not part of the public API.
 */
#ifndef MCF_RING_H
#define MCF_RING_H

#include "mcuforge/kernels.h"

/* The last input row any output row reads. */
static inline int32_t mcf_ring_last(const mcf_depthwise_conv2d_params *p)
{
    const int32_t last = (p->out_h - 1) * p->stride_h - p->pad_top + (p->k_h - 1) * p->dilation_h;
    return last < p->in_h - 1 ? last : p->in_h - 1;
}

/* Input rows [lo, hi] that must be in the ring before output row oy is
 * written: the rows it reads and, in place, the rows it overwrites. Writing
 * to another buffer (in_place 0) the same argument holds with hi = need. */
static inline void mcf_ring_bounds_of(const mcf_depthwise_conv2d_params *p, int32_t last, int32_t oy,
                                      int32_t in_place, int32_t *lo, int32_t *hi)
{
    const int32_t top = oy * p->stride_h - p->pad_top;
    const int32_t span = (p->k_h - 1) * p->dilation_h;
    const int32_t need = top + span < p->in_h - 1 ? top + span : p->in_h - 1;
    int32_t h = ((oy + 1) * p->out_w - 1) / p->in_w;
    h = h < last ? h : last;
    *hi = in_place && h > need ? h : need;
    *lo = top > 0 ? top : 0;
}

static inline void mcf_ring_bounds(const mcf_depthwise_conv2d_params *p, int32_t last, int32_t oy,
                                   int32_t *lo, int32_t *hi)
{
    mcf_ring_bounds_of(p, last, oy, 1, lo, hi);
}

/* Rows of the input kept in the ring. */
static inline int32_t mcf_ring_rows_of(const mcf_depthwise_conv2d_params *p, int32_t in_place)
{
    const int32_t last = mcf_ring_last(p);
    int32_t rows = 0, oy, lo, hi;
    for (oy = 0; oy < p->out_h; ++oy) {
        mcf_ring_bounds_of(p, last, oy, in_place, &lo, &hi);
        if (hi - lo + 1 > rows) {
            rows = hi - lo + 1;
        }
    }
    return rows;
}

static inline int32_t mcf_ring_rows(const mcf_depthwise_conv2d_params *p)
{
    return mcf_ring_rows_of(p, 1);
}

#endif /* MCF_RING_H */
