# The benchmark suite against glibc, jemalloc, tcmalloc and mimalloc; see
# bench/README.md.
#
#   make bench         every workload of bench/suite/ (and bench/threads.c's
#                      larson and prodcons) under the five allocators, then
#                      the instruction counts: $(BUILD)/bench.md, $(BUILD)/bench.png
#                      BENCH_REPS=N (default 5), BENCH_QUICK=1 for a smoke run
#   make bench-instr   instructions per malloc/free pair under callgrind only:
#                      $(BUILD)/bench-instr.md
#
# Included from the top Makefile (`-include bench/suite.mk`), so paths are
# relative to the workspace root and $(LIB)/$(BUILD)/$(PYTHON) come from there.

.PHONY: bench bench-instr

bench: lib
	PYTHON=$(PYTHON) bash bench/run.sh all $(LIB) $(abspath $(BUILD))

bench-instr: lib
	PYTHON=$(PYTHON) bash bench/run.sh instr $(LIB) $(abspath $(BUILD))
