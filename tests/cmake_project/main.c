/* Runs net_a and net_b (the same model under two prefixes) on every input of
 * argv[1] (raw int8, the model's input layout) and writes their outputs to
 * argv[2] and argv[3]. */
#include <stdio.h>
#include <string.h>

#include "net_a.h"
#include "net_b.h"

int main(int argc, char **argv)
{
    FILE *in, *out_a, *out_b;
    long n = 0;
    if (argc != 4) {
        fprintf(stderr, "usage: %s IN.bin OUT_A.bin OUT_B.bin\n", argv[0]);
        return 2;
    }
    in = fopen(argv[1], "rb");
    out_a = fopen(argv[2], "wb");
    out_b = fopen(argv[3], "wb");
    if (!in || !out_a || !out_b || net_a_init() != 0 || net_b_init() != 0) {
        return 3;
    }
    while (fread(net_a_input(), 1, NET_A_INPUT_SIZE, in) == NET_A_INPUT_SIZE) {
        memcpy(net_b_input(), net_a_input(), NET_B_INPUT_SIZE);
        if (net_a_invoke() != 0 || net_b_invoke() != 0) {
            return 4;
        }
        fwrite(net_a_output(), 1, NET_A_OUTPUT_SIZE, out_a);
        fwrite(net_b_output(), 1, NET_B_OUTPUT_SIZE, out_b);
        n++;
    }
    fclose(in);
    fclose(out_a);
    fclose(out_b);
    printf("ran %ld input(s)\n", n);
    return n > 0 ? 0 : 5;
}
