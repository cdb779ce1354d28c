# Thread-scaling benchmark: bench/threads.c (prodcons, larson, private at
# 1, 2, 4 and 8 threads) under libptmalloc-rs, glibc, jemalloc, tcmalloc and
# mimalloc; see bench/README.md.
#
#   make bench-threads   the table in $(BUILD)/bench-threads.md (and on the terminal)
#                        BENCH_REPS=N (default 5), BENCH_QUICK=1 for a smoke run
#
# Included from the top Makefile (`-include bench/threads.mk`), so paths are
# relative to the workspace root and $(LIB)/$(BUILD) come from there.

.PHONY: bench-threads

bench-threads: lib
	bash bench/run-threads.sh $(LIB) $(abspath $(BUILD))/bench-threads.md
