# Allocator compatibility and valgrind runs of the C suite.
# Included from the top Makefile (`-include c-tests/compat.mk`), so paths
# are relative to the workspace root and $(LIB)/$(BUILD) come from there.
#
#   make compat          the suite's programs under libptmalloc-rs, glibc,
#                        jemalloc, tcmalloc and mimalloc: build/compat.md
#   make compat-deps     install the three other allocators (Debian packages)
#   make valgrind        memcheck of a few suite programs with the library preloaded

# Included before the top Makefile's first target, this file must not
# become the default goal.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

COMPAT_PKGS := libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0
COMPAT_LIBS := /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
               /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
               /usr/lib/x86_64-linux-gnu/libmimalloc.so.2

.PHONY: compat compat-deps valgrind

compat-deps:
	@missing=; for f in $(COMPAT_LIBS); do [ -e $$f ] || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing $(COMPAT_PKGS)"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get install -y $(COMPAT_PKGS) || \
	    { $$SUDO apt-get update && $$SUDO apt-get install -y $(COMPAT_PKGS); }; \
	fi

compat: lib compat-deps
	c-tests/compat/run.sh $(LIB) $(abspath $(BUILD))/compat.md

valgrind: lib
	c-tests/compat/valgrind.sh $(LIB) $(abspath $(BUILD))/valgrind
