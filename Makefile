# The commands the README promises: `make demo` and `make test` (the
# default release, 2026.2), and `make matrix` (every supported release).
# Each creates the virtualenv(s) and installs what it needs on first use.

PYTHON  ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed
# Parallel test workers; the suite is sized for the 2-core CI machine.
WORKERS ?= 2

.PHONY: demo test unit functional venv system-deps bench constraints sample-config clean matrix

$(STAMP): requirements.txt test-requirements.txt constraints.txt setup.cfg | system-deps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -r requirements.txt -r test-requirements.txt \
	  || { echo "warning: retrying without libvirt-python (it builds against libvirt-dev and pkg-config); instance-HA tests will skip"; \
	       grep -v -i '^libvirt-python' test-requirements.txt > $(VENV)/test-requirements-nolibvirt.txt; \
	       $(BIN)/pip install -q -c constraints.txt -r requirements.txt -r $(VENV)/test-requirements-nolibvirt.txt; }
	$(BIN)/pip install -q -c constraints.txt --no-deps -e .
	touch $@

venv: $(STAMP)

# Debian tools the tests drive: ipmitool (the IPMI fencing driver runs it
# against the virtual BMCs) and shellcheck (lints the devstack plugin).
# Installed only when missing and when we can.
SYSTEM_TOOLS = ipmitool shellcheck
# Instance HA (doc/instance-ha.md) runs a private libvirtd with the QEMU
# driver (TCG, no KVM needed); libvirt-python builds against libvirt-dev.
# As FILE:PACKAGE, installed when FILE is missing.
LIBVIRT_QEMU_DRIVER = /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so
SYSTEM_FILES = /usr/sbin/libvirtd:libvirt-daemon \
	$(LIBVIRT_QEMU_DRIVER):libvirt-daemon-driver-qemu \
	/usr/bin/qemu-system-x86_64:qemu-system-x86 \
	/usr/include/libvirt/libvirt.h:libvirt-dev /usr/bin/pkg-config:pkg-config
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	for f in $(SYSTEM_FILES); do test -e $${f%%:*} || missing="$$missing $${f##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
	      || echo "warning: could not install$$missing; tests that need them will skip"; \
	  else echo "warning:$$missing missing and not root; tests that need them will skip"; fi; fi

demo: $(STAMP) system-deps
	$(BIN)/nova-ha-sim demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal --durations=25 tests

unit: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal tests/unit

functional: $(STAMP) system-deps
	$(BIN)/python -m pytest -n $(WORKERS) --dist worksteal tests/functional

# The supported-release matrix (README, doc/releases.md): per release, a
# virtualenv from its upper-constraints (upper-constraints/*.txt) with that
# release's nova, nova-ha installed as an operator would, pip dry-run checks,
# the scheduler/maintenance/evacuator functional tests; then a control-plane
# install without nova. Virtualenvs are cached in ~/.cache/nova-ha-matrix.
# MATRIX_ARGS, e.g. "--release 2025.1" or "--no-tests".
MATRIX_ARGS ?=
matrix: system-deps
	$(PYTHON) tools/matrix.py $(MATRIX_ARGS)

bench: $(STAMP) system-deps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# etc/nova-ha.conf.sample, generated from the oslo.config.opts entry
# points; tests/unit/test_config_sample.py fails when it is stale.
sample-config: $(STAMP)
	$(BIN)/oslo-config-generator --config-file etc/oslo-config-generator/nova-ha.conf

constraints:
	$(BIN)/pip freeze --exclude-editable | grep -v -i '^nova-ha' > constraints.txt.new
	{ echo '# Reproducible install: pip install -c constraints.txt -r requirements.txt -r test-requirements.txt'; \
	  echo '# Regenerate with: make constraints'; cat constraints.txt.new; } > constraints.txt
	rm -f constraints.txt.new

clean:
	rm -rf $(VENV) .pytest_cache
