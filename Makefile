# The two commands a new user runs (see README): `make demo` and `make test`.
# Both build .venv themselves, idempotently; a second run only re-installs when setup.py changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch and torchaudio are pinned here (not in setup.py) to the pair measured to work together.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
PYTEST_ARGS ?=
# `make test` runs the suite on two pytest-xdist workers, each with half the cores, longest tests
# first (tests/ci_policy.py), then the demo's full training alone: the demo trains on two
# processes, one per core, as `make demo` does, which beats one thread beside the rest of the
# suite. PYTEST_XDIST= runs the suite in one process.
PYTEST_XDIST ?= -n 2 --dist worksteal
DEMO_TEST := tests/local/test_recipe_demo.py::test_demo_recipe_default_meets_the_bar

.PHONY: venv demo test test-fast test-slow lint bench results clean-venv venv-espnet test-espnet \
	gpu-check results-ci results-startup results-chunking results-long-audio browser docs-figures \
	tts-tools results-stale

# ESPnet's enhancement task, and the oldest torch we support, in a venv of their own: espnet
# 202511 pins setuptools<74 while torch 2.14 needs >=77, so they can't share .venv. uv resolves
# and installs it in about a minute (pip 26 also refuses espnet's dependency ci_sdr, whose unused
# extra names a git URL). Tested torch range: 2.9.1 (here) to 2.14.1 (.venv); see setup.py.
ESPNET_VENV := .venv-espnet
ESPNET_PY := $(ESPNET_VENV)/bin/python
ESPNET_STAMP := $(ESPNET_VENV)/.installed
# numpy<2.4: ESPnet 202511's chunk iterator (iterator_type: chunk, as our ESPnet confs) does
# int() of a 1-element array, an error since NumPy 2.4 (a deprecation warning before).
ESPNET_PINS := torch==2.9.1 torchaudio==2.9.1 asteroid==0.7.0 espnet==202511 "setuptools<74" \
	"numpy<2.4"
# What runs on torch 2.9: the ESPnet tests and the plugin's own fast tests of what depends on
# torch's version (model, layers, depthwise backward, masker, released checkpoints, loading,
# CLIs, inference, data, recipe library). The start-up hook's tests (tests/test_hook.py) run in
# .venv only: the hook is import machinery that no torch API reaches, and test_espnet.py checks
# it in this venv where it matters, ESPnet building TDANet without importing the plugin.
TORCH_OLDEST_TESTS := tests/test_espnet.py tests/test_models.py tests/test_layers.py \
	tests/test_depthwise.py tests/test_masker.py tests/test_look2hear.py tests/test_io.py \
	tests/test_cli.py tests/test_inference.py tests/test_fast.py tests/test_kernels.py \
	tests/test_runtime.py tests/data tests/recipes

venv: $(STAMP)

$(STAMP): setup.py Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools<81" wheel
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[all]" $(TORCH_PINS)
	touch $(STAMP)

DEMO_REPORT := egs/mini2mix/TDANet/exp/tdanet/report/index.html
demo: venv
	cd egs/mini2mix/TDANet && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./run.sh
	@echo "Evaluation report (open it in a browser): $(CURDIR)/$(DEMO_REPORT)"

# Everything CI (.ci/run) runs: the whole suite, slow end-to-end checks included, then the
# ESPnet tests and the plugin's fast tests on the oldest supported torch (test-espnet).
# Exit status 5 is pytest's "no test selected", which PYTEST_ARGS="-k ..." may cause in either run.
test: venv browser tts-tools
	$(PY) -m pytest $(PYTEST_XDIST) --deselect $(DEMO_TEST) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest $(DEMO_TEST) $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(MAKE) test-espnet

# Quick local loops: without, or only, the slow end-to-end checks.
test-fast: venv tts-tools
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: venv browser tts-tools
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# Debian packages some tests need, installed with apt-get (through sudo when not root) unless
# already there: chromium for the evaluation report's browser test (Playwright's own browser
# download needs network access), flite/espeak-ng/sox to regenerate egs/mini2mix/sources bit for
# bit (tests/data/test_mini2mix.py).
APT_INSTALL = SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); $$SUDO apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends
browser:
	@command -v chromium >/dev/null || { $(APT_INSTALL) chromium; }

TTS_TOOLS := flite espeak-ng sox
tts-tools:
	@command -v flite >/dev/null && command -v espeak-ng >/dev/null && command -v sox >/dev/null \
		|| { $(APT_INSTALL) $(TTS_TOOLS); }

venv-espnet: $(ESPNET_STAMP)

$(ESPNET_STAMP): setup.py Makefile
	rm -rf $(ESPNET_VENV)
	$(PYTHON) -m venv $(ESPNET_VENV)
	$(ESPNET_PY) -m pip install --quiet uv
	$(ESPNET_VENV)/bin/uv pip install --quiet --python $(ESPNET_PY) -e ".[recipes,test]" \
		$(ESPNET_PINS)
	touch $(ESPNET_STAMP)

# ESPnet runs TDANet from our conf and data folders; the plugin's fast tests on torch 2.9, on
# two workers as in `make test`. TDANET_ESPNET_VENV=1: a missing espnet2 is an error, and the
# run fails unless ESPnet tests passed (tests/ci_policy.py); pytest itself fails (exit 5) when
# nothing was collected.
test-espnet: venv-espnet
	TDANET_ESPNET_VENV=1 $(ESPNET_PY) -m pytest $(PYTEST_XDIST) -m "not slow" $(TORCH_OLDEST_TESTS) \
		$(PYTEST_ARGS)
	TDANET_ESPNET_VENV=1 $(ESPNET_PY) -m pytest -m slow tests/test_espnet_recipe.py $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: venv
	$(VENV)/bin/tdanet-bench --quick

# Every number the READMEs quote is regenerated by one results-<study> target, which writes
# results/<study>.json (asteroid_tdanet.provenance); `make results` runs them all (hours).
RESULTS :=

# What installing the plugin (its start-up hook) costs `python -c pass` (README, "No glue").
RESULTS += results-startup
results-startup: venv
	$(PY) -m asteroid_tdanet.bench.startup --out results/startup.json

# The demo's trained model (`make demo` trains it when it is missing): the quality studies use it.
DEMO_MODEL ?= egs/mini2mix/TDANet/exp/tdanet/best_model.pth
$(DEMO_MODEL):
	$(MAKE) demo

# Chunked vs whole separation with the demo model, on a 5-minute recording, and the full-size
# TDANet's peak memory and time per chunk length (fresh processes; they need the machine to
# themselves). CHUNKING_ARGS=--no-probes skips the probes.
CHUNKING_ARGS ?=
RESULTS += results-chunking
results-chunking: venv $(DEMO_MODEL)
	$(PY) -m asteroid_tdanet.studies.chunking --model $(DEMO_MODEL) --out results/chunking.json \
	  --minutes 5 $(CHUNKING_ARGS)

# One hour of audio through tdanet-separate (full-size TDANet: memory and time; demo model:
# quality): ~30 minutes on 2 cores. Work files go to exp/studies/long_audio. On a shared machine,
# e.g. LONG_AUDIO_ARGS="--lock /tmp/tdanet-heavy.lock --quality-threads 1" holds the heavy-job
# lock only for the timed full-size run; --full-minutes N times the full-size model on the first
# N minutes only (the result says so; the arguments are recorded in it).
LONG_AUDIO_ARGS ?=
RESULTS += results-long-audio
results-long-audio: venv $(DEMO_MODEL)
	$(PY) -m asteroid_tdanet.studies.long_audio --quality-model $(DEMO_MODEL) \
	  --out results/long-audio.json --work exp/studies/long_audio $(LONG_AUDIO_ARGS)

# Dynamic mixing: items/s of one data-loading process vs the fixed mixtures (about a minute).
RESULTS += results-dynamic-mixing
results-dynamic-mixing: venv
	$(PY) -m asteroid_tdanet.data.throughput --out results/dynamic_mixing_throughput.json

# The demo recipe as `make demo` runs it (dynamic mixing + speed perturbation, 6000 steps), the
# same budget on the fixed mixtures and with dynamic mixing alone, then the augmentation table
# (fixed mixtures, dynamic mixing, dynamic mixing + speed perturbation) at one shorter step
# budget (1000 steps; the cosine schedule spans it). Minutes, steps and test scores of each run,
# from fresh folders, with the load (about 90 minutes on 2 quiet cores).
DEMO_MEASURE = $(PY) -m asteroid_tdanet.recipes.measure --recipe egs/mini2mix/TDANet \
	--command "make results-demo"
DEMO_TABLE_STEPS = --training.max_steps 1000
FIXED_MIXTURES = --data.dynamic_mixing false --data.mixtures_per_epoch null --data.speed_perturb null
RESULTS += results-demo
results-demo: venv
	$(DEMO_MEASURE) --variant dynamic_mixing_speed_perturb "" \
		--out results/demo-dynamic-mixing-speed-perturb.json
	$(DEMO_MEASURE) --variant fixed_mixtures "$(FIXED_MIXTURES)" \
		--out results/demo-fixed-mixtures.json
	$(DEMO_MEASURE) --variant dynamic_mixing "--data.speed_perturb null" \
		--out results/demo-dynamic-mixing.json
	$(DEMO_MEASURE) --variant fixed_mixtures_1000 "$(DEMO_TABLE_STEPS) $(FIXED_MIXTURES)" \
		--out results/demo-1000steps-fixed-mixtures.json
	$(DEMO_MEASURE) --variant dynamic_mixing_1000 \
		"$(DEMO_TABLE_STEPS) --data.speed_perturb null" \
		--out results/demo-1000steps-dynamic-mixing.json
	$(DEMO_MEASURE) --variant dynamic_mixing_speed_perturb_1000 "$(DEMO_TABLE_STEPS)" \
		--out results/demo-1000steps-dynamic-mixing-speed-perturb.json

# CPU inference speed of TDANet (fast path) against its baselines, side by side (README,
# "Efficiency"), once per host kind: the CPU as it is, and on an AVX-512 CPU limited to AVX2
# (fresh process each), at 8 kHz; then a second pass at 16 kHz, 1 thread, without the first-call
# and thread-scaling parts. About 12 minutes per host kind, plus 7 for the 16 kHz pass; run it
# alone on the machine (flock /tmp/tdanet-heavy.lock). CPU_SPEED_ARGS narrows both passes (e.g.
# "--seconds 1 --hosts native"); the result file records them.
CPU_SPEED_ARGS ?=
CPU_SPEED_COMMAND = make results-cpu-speed$(if $(CPU_SPEED_ARGS), CPU_SPEED_ARGS='$(CPU_SPEED_ARGS)')
RESULTS += results-cpu-speed
results-cpu-speed: venv
	$(PY) -m asteroid_tdanet.bench.cpu_speed --out results/cpu-speed.json $(CPU_SPEED_ARGS) \
		--command "$(CPU_SPEED_COMMAND)"
	$(PY) -m asteroid_tdanet.bench.cpu_speed --out results/cpu-speed.json $(CPU_SPEED_ARGS) \
		--sample-rate 16000 --threads 1 --first-call-seconds '' --scaling-blocks 0 \
		--command "$(CPU_SPEED_COMMAND)"

# What CI costs: .ci/run on a fresh clone of the current commit, timed (a whole CI run; run it
# on a quiet machine). Keeps per host (CPU identity) the wall time, its parts and the demo test's
# minutes in results/ci.json. Writes nothing when CI fails.
RESULTS += results-ci
results-ci: venv
	$(PY) -m asteroid_tdanet.studies.ci_time --out results/ci.json

results: $(RESULTS)

# Which result files measured code that changed since their commit (each study's code paths are
# declared in asteroid_tdanet/studies/stale.py); a report, re-run the studies it lists.
results-stale: venv
	$(PY) -m asteroid_tdanet.studies.stale

# TDANet's GPU figures on one CUDA GPU in <= 8 minutes: writes results/gpu-<card>.json.
# Not part of `make results`: it needs a GPU, and stops with a message without one.
gpu-check: venv
	$(PY) -m asteroid_tdanet.bench.gpu_check --out-dir results

# The pictures under docs/img/: architecture diagrams and quality vs MACs (from results/ and the
# paper's published figures), and the demo's training curve and separated example (from the
# demo run in egs/mini2mix/TDANet/exp/tdanet, trained by `make demo` when missing).
docs-figures: venv $(DEMO_MODEL)
	$(PY) -m asteroid_tdanet.figures --out docs/img --demo-exp egs/mini2mix/TDANet/exp/tdanet

clean-venv:
	rm -rf $(VENV) $(ESPNET_VENV)
