/*
 * mcuforge on Zephyr: the generated model, built with the options of the
 * scenario (testcase.yaml), gives exactly the NumPy reference's bytes, and
 * its arena is what the header and the budget say.
 */
#include <stdint.h>
#include <string.h>

#include <zephyr/ztest.h>

#include "testnet.h"
#include "testnet_expected.h"

ZTEST(mcuforge_inference, test_outputs_equal_reference)
{
	zassert_equal(testnet_init(), 0, "init failed");
	for (int i = 0; i < TESTNET_TEST_INPUTS; i++) {
		memcpy(testnet_input(), testnet_test_inputs[i], TESTNET_INPUT_SIZE);
		zassert_equal(testnet_invoke(), 0, "invoke failed on input %d", i);
		zassert_mem_equal(testnet_output(), testnet_test_expected[i], TESTNET_OUTPUT_SIZE,
				  "input %d: output differs from the NumPy reference", i);
	}
}

ZTEST(mcuforge_inference, test_invoke_is_repeatable)
{
	int8_t first[TESTNET_OUTPUT_SIZE];

	memcpy(testnet_input(), testnet_test_inputs[0], TESTNET_INPUT_SIZE);
	zassert_equal(testnet_invoke(), 0);
	memcpy(first, testnet_output(), sizeof(first));
	memcpy(testnet_input(), testnet_test_inputs[0], TESTNET_INPUT_SIZE);
	zassert_equal(testnet_invoke(), 0);
	zassert_mem_equal(first, testnet_output(), sizeof(first));
}

ZTEST(mcuforge_inference, test_buffers_in_arena)
{
	const int8_t *lo = testnet_arena, *hi = testnet_arena + TESTNET_ARENA_SIZE;

	zassert_equal(sizeof(testnet_arena), TESTNET_ARENA_SIZE);
	zassert_true(testnet_input() >= lo && testnet_input() + TESTNET_INPUT_SIZE <= hi);
	zassert_true(testnet_output() >= lo && testnet_output() + TESTNET_OUTPUT_SIZE <= hi);
}

ZTEST(mcuforge_inference, test_arena_within_budget)
{
#if CONFIG_MCUFORGE_SRAM_BUDGET_KB > 0 && (!defined(CONFIG_MCUFORGE_MEMORY_CHECK) ||                \
					   defined(CONFIG_MCUFORGE_MEMORY_CHECK_FAIL))
	zassert_true(TESTNET_ARENA_SIZE <= CONFIG_MCUFORGE_SRAM_BUDGET_KB * 1024,
		     "arena %d bytes over the budget of %d KiB", TESTNET_ARENA_SIZE,
		     CONFIG_MCUFORGE_SRAM_BUDGET_KB);
#else
	ztest_test_skip();
#endif
}

ZTEST_SUITE(mcuforge_inference, NULL, NULL, NULL, NULL, NULL);
