# subtitler: `make demo` subtitles the sample, `make test` runs the suite (`make test-fast`: no engine).
# Each installs what is missing first (`make install`), so any of them works first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := build/demo

.PHONY: install demo test test-fast bench bench-gpu bench-cluster lint clean

install: $(STAMP)

$(STAMP): pyproject.toml plugins/*/pyproject.toml
	@# ffmpeg (and fontconfig's fc-list, to check glyphs before burning in): Debian's packages
	@# when we may install them, else the imageio-ffmpeg wheel's binary.
	@{ command -v ffmpeg && command -v fc-list; } >/dev/null || { [ "$$(id -u)" = 0 ] \
		&& command -v apt-get >/dev/null && apt-get update -qq \
		&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg fontconfig >/dev/null; } \
		|| echo "ffmpeg: not installed system-wide, using the imageio-ffmpeg wheel"
	$(PYTHON) -m venv $(VENV)
	@# The CPU build of torch; GPU users install the torch build they need before this.
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q torch==2.13.0
	@# openai-whisper without triton (1 GB, GPU-only): its real needs, then it with --no-deps.
	$(BIN)/pip install -q numba tiktoken more-itertools tqdm
	$(BIN)/pip install -q --no-deps openai-whisper==20250625
	@# Before 0.2 the core was installed as "subtitler" (PyPI's name for another project).
	@$(BIN)/pip uninstall -q -y subtitler 2>/dev/null || true
	$(BIN)/pip install -q -e '.[models,test,ray]' -e plugins/subtitler-faster-whisper
	$(BIN)/pip install -q --no-deps -e plugins/subtitler-whisper
	$(BIN)/pip install -q -e plugins/subtitler-tiyaro -e plugins/subtitler-openai
	@# The yt-dlp post-processor: its src layout keeps the editable install visible to yt-dlp's discovery.
	$(BIN)/pip install -q -e plugins/yt-dlp-subtitler
	@command -v ffmpeg >/dev/null || $(BIN)/pip install -q -e '.[ffmpeg]'
	$(BIN)/subtitler backends
	touch $(STAMP)

demo: install
	$(BIN)/subtitler samples/sample.mp4 --format srt,vtt,json --output-dir $(DEMO) --overwrite
	@cat $(DEMO)/sample.srt

# Two test processes at once, one per core (pytest-xdist; each file's tests in one process, so its
# module fixtures load once); then the tests that time real work against deadlines, alone.
test: install
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not serial"
	$(BIN)/pytest -q -m serial

# The inner loop: every test that loads no speech engine (README, Development). It is CPU-bound:
# two halves of the test files run at once, one per core; the second's report follows the first's.
test-fast: install
	$(BIN)/ruff check .
	@mkdir -p build
	SUBTITLER_TEST_FAST=1 $(BIN)/pytest -q --shard 2/2 > build/test-fast-2.log 2>&1 & second=$$!; \
	SUBTITLER_TEST_FAST=1 $(BIN)/pytest -q --shard 1/2; first=$$?; \
	wait $$second; status=$$?; cat build/test-fast-2.log; [ $$first = 0 ] && [ $$status = 0 ]

bench: install
	$(BIN)/python tests/benchmarks/bench.py
	$(BIN)/python tests/benchmarks/bench_layout.py
	$(BIN)/python tests/benchmarks/bench_timing.py
	$(BIN)/python tests/benchmarks/bench_video.py
	$(BIN)/python tests/benchmarks/bench_batch.py
	$(BIN)/python tests/benchmarks/bench_remote.py
	$(BIN)/python tests/benchmarks/bench_long.py
	$(BIN)/python tests/benchmarks/bench_memory.py
	$(BIN)/python tests/benchmarks/bench_serve.py
	$(BIN)/python tests/benchmarks/bench_ytdlp.py

# On an NVIDIA machine: install a CUDA build of torch into $(VENV) first (bench_gpu.py says how).
# Without CUDA it stops at once with exit status 2.
bench-gpu: install
	$(BIN)/python tests/benchmarks/bench_gpu.py

# 20 copies of the sample on a local 2-node Ray cluster vs one machine (not in `make bench`).
bench-cluster: install
	$(BIN)/python tests/benchmarks/bench_cluster.py

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache
