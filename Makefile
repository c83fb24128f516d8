# Style Gallery: `make run` sets up and starts the site and a worker; `make test` sets up and runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
APT_UPDATED := /tmp/.stylegallery-apt-updated
# A host with an NVIDIA GPU gets JAX's CUDA build (requirements-gpu.txt) too; the engine then computes
# on JAX there, on the GPU (docs/DEPLOY.md).
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
REQUIREMENTS := requirements.txt $(if $(GPU),requirements-gpu.txt)

.PHONY: run setup migrate test test-fast test-scale loadtest bench gpu-check gpu-bundle system-deps browser-deps server-deps clean

setup: $(STAMP) migrate

$(STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install $(addprefix -r ,$(REQUIREMENTS))
	touch $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0

run: setup
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

# Debian packages the tests need: Chromium for the browser tests, PostgreSQL and Redis servers
# for the scale-out tests (started by the tests themselves on loopback).
system-deps: browser-deps server-deps

$(APT_UPDATED):
	apt-get update
	touch $(APT_UPDATED)

browser-deps:
	@command -v chromium >/dev/null || { $(MAKE) $(APT_UPDATED) && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core; }

server-deps:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { $(MAKE) $(APT_UPDATED) && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }
	@command -v redis-server >/dev/null || { $(MAKE) $(APT_UPDATED) && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server; }

test: setup system-deps
	$(PY) -m pytest -m "not scale"
	KERAS_BACKEND=jax JAX_PLATFORMS=cpu $(PY) -m pytest -m backends -p no:cacheprovider tests/stylecore
	$(MAKE) test-scale

# Only the quick unit and Django tests (no browser, workers, servers or real-engine tests). Budget:
# 2 minutes on two CPU cores, met in CPU time: 1410 tests take 69 CPU-seconds in one process, 78
# with one pytest-xdist worker per core (each its own SQLite test database, tests/conftest.py, and tmp
# folders). Wall time on the shared 2-core machine depends on the others' load: quiet (load under 2), two
# workers 42 s and one process 71 s; with fewer tests, two workers 1 min 22 s to 2 min 18 s at 5.8-6.7.
# What keeps the budget: MD5 password hashing in tests (tests/conftest.py), one security-matrix world
# per module (tests/security/conftest.py), and the real engine only in tests marked slow, which
# `make test` runs. A gallery test that computes with the real network without @pytest.mark.slow fails
# (tests/gallery/conftest.py); stylecore's engine fixture marks its users.
test-fast: setup
	$(PY) -m pytest -n auto -m "not browser and not worker and not scale and not slow"

test-scale: setup server-deps
	$(PY) -m pytest -m scale -p no:cacheprovider tests/scale

loadtest: setup
	$(PY) -m tests.load.loadtest

# The engine benchmark (tests/bench, outside the engine package); e.g. the benchmark set's quick mode:
# $(PY) -m tests.bench --part time-to-quality --set default --quick
bench: setup
	$(PY) -m tests.bench

# Which device the engine computes on (KERAS_BACKEND: tensorflow or jax), its speed, GPU against CPU losses.
gpu-check: setup
	$(PY) -m stylecore.gpucheck

# .gpu/: what an offline GPU host needs to run gpu-check in one call (wheels, float16 weights, run.sh).
gpu-bundle: setup
	$(PY) -m stylecore.gpubundle .gpu

clean:
	rm -rf $(VENV) staticfiles test-artifacts .gpu
