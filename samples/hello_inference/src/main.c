/*
 * hello_inference: run a model mcuforge generated at build time on a fixed
 * input, print its int8 outputs and a checksum of them. The console harness
 * of sample.yaml compares the checksum with the one the host computes with
 * the NumPy reference (the generated C equals it bit for bit).
 */
#include <stdint.h>

#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

#include "hello.h"

/* FNV-1a, 32 bit, over the output bytes. */
static uint32_t checksum(const int8_t *data, int size)
{
	uint32_t hash = 2166136261u;

	for (int i = 0; i < size; i++) {
		hash ^= (uint8_t)data[i];
		hash *= 16777619u;
	}
	return hash;
}

/* A thread rather than main(): its signature is the same in every Zephyr
 * release (main() returns void before 3.4 and int after).
 */
static void hello_inference(void *p1, void *p2, void *p3)
{
	int8_t *input;
	const int8_t *output;
	int best = 0;

	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);

	printk("hello_inference: model hello, arena %d bytes, %d layers\n", HELLO_ARENA_SIZE,
	       HELLO_NUM_LAYERS);
	if (hello_init() != 0) {
		printk("hello_inference: init failed\n");
		return;
	}
	input = hello_input();
	for (int i = 0; i < HELLO_INPUT_SIZE; i++) {
		input[i] = (int8_t)((i * 37 + 11) % 256 - 128);
	}
	if (hello_invoke() != 0) {
		printk("hello_inference: invoke failed\n");
		return;
	}
	output = hello_output();
	printk("hello_inference: outputs");
	for (int i = 0; i < HELLO_OUTPUT_SIZE; i++) {
		printk(" %d", output[i]);
		if (output[i] > output[best]) {
			best = i;
		}
	}
	printk("\nhello_inference: top class %d\n", best);
	printk("hello_inference: checksum 0x%08x\n", checksum(output, HELLO_OUTPUT_SIZE));
	printk("hello_inference: done\n");
}

K_THREAD_DEFINE(hello_inference_thread, 2048, hello_inference, NULL, NULL, NULL, 5, 0, 0);
