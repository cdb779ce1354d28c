# libptmalloc-rs — build, run, check.
#
#   make          build build/libptmalloc-rs.so (+ .so.0, .so.0.1.0, .a)
#   make run      the main job: a real program under the library, with its statistics
#   make check    every test: format, lints, Rust tests, C suite (3 modes), real programs
#   make header   regenerate include/ptmalloc-rs/ptmalloc.h with cbindgen
#   make install  PREFIX=/usr DESTDIR=...   (also uninstall, distcheck, deb, rpm: see packaging/README.md)

CARGO    ?= cargo
BUILD    := build
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
LIBNAME  := libptmalloc-rs.so
SONAME   := $(LIBNAME).$(MAJOR)
REALNAME := $(LIBNAME).$(VERSION)
LIB      := $(abspath $(BUILD)/$(LIBNAME))
# The interpreter itself, not a wrapper script (pyenv's shim is a shell script).
PYTHON   ?= $(shell python3 -c 'import sys; print(sys.executable)')

.PHONY: all lib run check fmt-check clippy test c-tests real-programs header clean

all: lib

lib:
	$(CARGO) build --release -p ptmalloc-rs
	@mkdir -p $(BUILD)
	cp target/release/libptmalloc_rs.so $(BUILD)/$(REALNAME)
	cp target/release/libptmalloc_rs.a $(BUILD)/libptmalloc-rs.a
	ln -sf $(REALNAME) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/$(LIBNAME)
	@echo "built $(BUILD)/$(REALNAME) (soname $(SONAME))"

# The main job: CPython building and querying a large dict/list/string
# workload, with malloc_stats printed at exit by the library.
run: lib
	@echo "== python3 under $(LIB) (PTMALLOC_RS_SHOW_STATS=1)"
	LD_PRELOAD=$(LIB) PTMALLOC_RS_SHOW_STATS=1 $(PYTHON) tests/workload.py

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --release -- -D warnings

test: lib
	PTMALLOC_RS_LIB=$(LIB) $(CARGO) test --workspace --release

real-programs: lib
	tests/real-programs/run.sh $(LIB)

check: fmt-check clippy test real-programs distcheck reproducible-check python-check

header:
	PTMALLOC_RS_BLESS=1 $(CARGO) test --release -p ptmalloc-rs --test header

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# Installation and distribution packages (make install, uninstall, deb, rpm, distcheck).
-include packaging/install.mk

# The compatibility table against glibc, jemalloc, tcmalloc and mimalloc (make compat), valgrind.
-include c-tests/compat.mk

# Thread-scaling benchmark against glibc, jemalloc, tcmalloc and mimalloc (make bench-threads).
-include bench/threads.mk

# The benchmark suite: time, peak RSS and instructions per pair against the same peers (make bench).
-include bench/suite.mk

# The Python bindings: wheel into a fresh venv, then their tests (make python-check).
-include bindings/python/python.mk
