/*
 * mcuforge runtime: the element walk of the binary elementwise kernels
 * (see mcf_broadcast.h): mcf_binary_walk's runs, one call of fn per element.
 */
#include "mcf_broadcast.h"

typedef struct {
    mcf_binary_fn fn;
    const void *params;
} element_job;

static void element_run(const void *job, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb, int8_t *out,
                        int32_t n)
{
    const element_job *j = (const element_job *)job;
    int32_t i;
    for (i = 0; i < n; ++i, a += sa, b += sb) {
        out[i] = j->fn(j->params, *a, *b);
    }
}

int mcf_binary_apply(int32_t size, int32_t broadcast, const int32_t *out_shape,
                     const int32_t *input1_stride, const int32_t *input2_stride,
                     const int8_t *input1, const int8_t *input2, int8_t *output,
                     mcf_binary_fn fn, const void *params)
{
    element_job job;
    job.fn = fn;
    job.params = params;
    return mcf_binary_walk(size, broadcast, out_shape, input1_stride, input2_stride, input1, input2, output,
                           element_run, &job);
}
