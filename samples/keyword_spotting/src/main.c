/*
 * keyword_spotting: a DS-CNN for 49x10 MFCC features, compiled by mcuforge
 * at build time with the SRAM budget and the schedule chosen in Kconfig.
 * Prints the memory the build planned, the class scores for a fixed input,
 * a checksum the console harness compares with the host reference, and the
 * inference time in cycles.
 */
#include <stdint.h>

#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

#include "kws.h"

static const char *const labels[KWS_OUTPUT_SIZE] = {
	"silence", "unknown", "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
};

static uint32_t checksum(const int8_t *data, int size)
{
	uint32_t hash = 2166136261u; /* FNV-1a, 32 bit */

	for (int i = 0; i < size; i++) {
		hash ^= (uint8_t)data[i];
		hash *= 16777619u;
	}
	return hash;
}

/* A thread rather than main(): the same signature in every Zephyr release. */
static void keyword_spotting(void *p1, void *p2, void *p3)
{
	int8_t *features;
	const int8_t *scores;
	uint32_t start, cycles;
	int best = 0;

	ARG_UNUSED(p1);
	ARG_UNUSED(p2);
	ARG_UNUSED(p3);

	printk("keyword_spotting: arena %d bytes (budget %d KiB), %d layers, %d MACs\n",
	       KWS_ARENA_SIZE, CONFIG_MCUFORGE_SRAM_BUDGET_KB, KWS_NUM_LAYERS, KWS_MACS);
	if (kws_init() != 0) {
		printk("keyword_spotting: init failed\n");
		return;
	}
	/* A fixed stand-in for one second of MFCC features (49 frames x 10). */
	features = kws_input();
	for (int i = 0; i < KWS_INPUT_SIZE; i++) {
		features[i] = (int8_t)((i * 29 + 7) % 200 - 100);
	}
	start = k_cycle_get_32();
	if (kws_invoke() != 0) {
		printk("keyword_spotting: invoke failed\n");
		return;
	}
	cycles = k_cycle_get_32() - start;
	scores = kws_output();
	printk("keyword_spotting: scores");
	for (int i = 0; i < KWS_OUTPUT_SIZE; i++) {
		printk(" %d", scores[i]);
		if (scores[i] > scores[best]) {
			best = i;
		}
	}
	printk("\nkeyword_spotting: top class %d (%s)\n", best, labels[best]);
	printk("keyword_spotting: checksum 0x%08x\n", checksum(scores, KWS_OUTPUT_SIZE));
	printk("keyword_spotting: %u cycles\n", cycles);
	printk("keyword_spotting: done\n");
}

K_THREAD_DEFINE(keyword_spotting_thread, 2048, keyword_spotting, NULL, NULL, NULL, 5, 0, 0);
