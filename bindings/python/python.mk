# The Python bindings (bindings/python, package ptmalloc_rs): included from the top Makefile.
#
#   make python-check   lint the extension crate, build the abi3 wheel with maturin into a
#                       fresh virtual environment under build/, install it with the test
#                       extras (pytest, hypothesis) and run the tests in bindings/python/tests
#   make python-wheel   just the wheel, in build/python-wheels/

PY_DIR    := bindings/python
PY_VENV   := $(abspath $(BUILD)/python-venv)
PY_WHEELS := $(abspath $(BUILD)/python-wheels)

.PHONY: python-check python-lint python-wheel

# The crate is its own cargo workspace (excluded from the root one): its own fmt and clippy.
python-lint:
	cd $(PY_DIR) && $(CARGO) fmt --check
	cd $(PY_DIR) && $(CARGO) clippy --release --all-targets -- -D warnings

python-wheel:
	rm -rf $(PY_VENV) $(PY_WHEELS)
	$(PYTHON) -m venv $(PY_VENV)
	$(PY_VENV)/bin/python -m pip install -q --upgrade pip
	$(PY_VENV)/bin/python -m pip install -q 'maturin>=1.4,<2'
	cd $(PY_DIR) && $(PY_VENV)/bin/maturin build --release --quiet -o $(PY_WHEELS)

# Tests run from bindings/python against the installed wheel (the sources are under python/,
# not importable from there), so they test what `pip install` gives a user.
python-check: python-lint python-wheel
	$(PY_VENV)/bin/python -m pip install -q "$$(ls $(PY_WHEELS)/ptmalloc_rs-*.whl)[test,png,plot]"
	cd $(PY_DIR) && $(PY_VENV)/bin/python -c 'import ptmalloc_rs, sys; assert "site-packages" in ptmalloc_rs.__file__, ptmalloc_rs.__file__'
	cd $(PY_DIR) && $(PY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests
