# rosa: build, test, demo.  `make help` lists the targets.
CC      ?= cc
BUILD   ?= build
SHARED  ?= $(if $(ROSA_SHARED),$(ROSA_SHARED),../shared)
PYTHON  ?= /usr/bin/python3

OPT     ?= -O3 -g
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter $(if $(WERROR),-Werror)
ALL_CFLAGS = $(OPT) -std=c11 -D_GNU_SOURCE $(WARN) -fopenmp -march=native -Iinclude -Isrc -MMD -MP $(CFLAGS)
LDLIBS  += -ldnnl -lopenblas -lpcre2-8 -lcjson -lutf8proc -lm
ALL_LDFLAGS = -fopenmp $(LDFLAGS)
# libyaml reads `--config FILE`: the command line's concern, not the library's.
CLI_LDLIBS := -lyaml

# Sanitizer build: make SAN=1 (ASan + UBSan, objects in build-san/).
ifeq ($(SAN),1)
BUILD   := build-san
OPT     := -O1 -g -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=undefined,float-cast-overflow
ALL_LDFLAGS += -fsanitize=address,undefined
endif
# ThreadSanitizer build: make TSAN=1 (clang and LLVM's OpenMP runtime, whose
# Archer tool tells TSan about OpenMP synchronisation; objects in build/tsan/).
ifeq ($(TSAN),1)
CC      := clang
BUILD   := build/tsan
OPT     := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=thread
endif

LIB_SRC  := $(sort $(wildcard src/*.c src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/bench_%.c=$(BUILD)/bench_%)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all deps test check-readme install shared test-san test-tsan fuzz fuzz-ci demo bench bench-quick bench-results clean help testdata

# The benchmarks are built with everything else so that a change cannot
# leave them broken until the next `make bench`.
all: $(BUILD)/rosa $(BUILD)/test_rosa $(BENCH_BIN)

help:
	@echo "make            build build/rosa and the test binary"
	@echo "make demo       fine-tune the shipped model and evaluate it (installs packages)"
	@echo "make test       run the whole test suite (installs packages)"
	@echo "make check-readme  build and run README's library example as it is shown"
	@echo "make install    bin/rosa, the headers, librosa.a, librosa.so and rosa.pc under PREFIX (/usr/local; DESTDIR honoured)"
	@echo "make test-san   the test suite under ASan + UBSan"
	@echo "make test-tsan  the test suite under ThreadSanitizer (clang)"
	@echo "make fuzz       each fuzz target for FUZZ_SECONDS (60) under ASan + UBSan (clang)"
	@echo "make bench      rosa against PyTorch: training steps, generation, GEMM ceiling (docs/bench.md)"
	@echo "make bench-quick  the same, SmolLM2-135M LoRA and generation only (< 2 min)"
	@echo "make bench-results  copy the last make bench report to bench/RESULTS.md, update README's table"
	@echo "make deps       install the Debian packages rosa needs"

deps:
	@sh tools/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/librosa.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The shared library: the same sources built position-independent in their
# own folder ($(BUILD)/pic/), so that the static library and the tool stay as
# they are.  soname librosa.so.0; librosa.so.0 and librosa.so link to the
# versioned file.
SOVERSION := 0
VERSION   := $(shell sed -n 's/^\#define ROSA_VERSION "\(.*\)"/\1/p' include/rosa.h)
PIC_OBJ   := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@
$(BUILD)/pic/librosa.so.$(VERSION): $(PIC_OBJ)
	$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,librosa.so.$(SOVERSION) -o $@ $^ $(LDLIBS)
shared: $(BUILD)/pic/librosa.so.$(VERSION)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the tool, both headers,
# the static and the shared library, and rosa.pc for pkg-config.
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
install: $(BUILD)/rosa $(BUILD)/librosa.a $(BUILD)/pic/librosa.so.$(VERSION)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 755 $(BUILD)/rosa $(DESTDIR)$(PREFIX)/bin/rosa
	install -m 644 include/rosa.h include/rosa_train.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(BUILD)/librosa.a $(DESTDIR)$(LIBDIR)/librosa.a
	install -m 755 $(BUILD)/pic/librosa.so.$(VERSION) $(DESTDIR)$(LIBDIR)/librosa.so.$(VERSION)
	ln -sf librosa.so.$(VERSION) $(DESTDIR)$(LIBDIR)/librosa.so.$(SOVERSION)
	ln -sf librosa.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/librosa.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' tools/rosa.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/rosa.pc

$(BUILD)/rosa: $(CLI_OBJ) $(BUILD)/librosa.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) $(CLI_LDLIBS)

$(BUILD)/test_rosa: $(TEST_OBJ) $(BUILD)/librosa.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS) $(CLI_LDLIBS)

$(BUILD)/bench_%: $(BUILD)/bench/bench_%.o $(BUILD)/librosa.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

bench: deps all $(BENCH_BIN)
	@PYTHON=$(PYTHON) sh tools/bench.sh $(BUILD) $(SHARED)

bench-quick: deps all $(BENCH_BIN)
	@PYTHON=$(PYTHON) sh tools/bench.sh $(BUILD) $(SHARED) quick

# Publishes the last `make bench` report: bench/RESULTS.md and the README's table.
bench-results:
	@test -f $(BUILD)/bench-report.md || { echo "no $(BUILD)/bench-report.md: run make bench first" >&2; exit 1; }
	@grep -q '^# rosa benchmark (make bench)' $(BUILD)/bench-report.md || { echo "$(BUILD)/bench-report.md is not a full make bench report" >&2; exit 1; }
	cp $(BUILD)/bench-report.md bench/RESULTS.md
	$(PYTHON) tools/bench_readme.py bench/RESULTS.md README.md

# Reference data made by the PyTorch reference (tools/): tiny random models
# and their logits.  Rebuilt when the tools change.
TESTDATA := $(BUILD)/testdata/.stamp
$(TESTDATA): tools/make_test_models.py tools/ref_llama.py
	@mkdir -p $(BUILD)/testdata
	$(PYTHON) tools/make_test_models.py --out $(BUILD)/testdata
	@touch $@

testdata: deps $(TESTDATA)

# The suites' environment.  The PyTorch references' results are kept in
# build/refcache by their inputs (tools/refcache.py): CI's three runs of the
# suite, and a rerun after a change to the C code only, compute each once.
TEST_ENV = ROSA_SHARED=$(SHARED) ROSA_REFCACHE=$(CURDIR)/build/refcache

test: deps
	@$(MAKE) --no-print-directory all shared $(TESTDATA)
	$(TEST_ENV) ROSA_TESTDATA=$(BUILD)/testdata ROSA_BIN=$(BUILD)/rosa $(BUILD)/test_rosa

# README's library example, built with the command shown next to it and run
# (tests/test_readme.c; also part of make test).
check-readme: all shared
	ROSA_SHARED=$(SHARED) ROSA_BIN=$(BUILD)/rosa $(BUILD)/test_rosa readme

test-san: deps
	@$(MAKE) --no-print-directory SAN=1 all
	@$(MAKE) --no-print-directory $(TESTDATA)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	$(TEST_ENV) ROSA_TESTDATA=build/testdata ROSA_BIN=build-san/rosa build-san/test_rosa

# The whole suite under TSan (docs/robustness.md).  OpenBLAS and oneDNN,
# built for libgomp, get LLVM's runtime in its place, so that one OpenMP
# runtime, known to TSan, runs every parallel region.
LIBOMP  = $(firstword $(wildcard /usr/lib/llvm-*/lib/libomp.so.5))
test-tsan: deps
	@$(MAKE) --no-print-directory TSAN=1 all
	@$(MAKE) --no-print-directory $(TESTDATA)
	@mkdir -p build/tsan/omp && ln -sf $(LIBOMP) build/tsan/omp/libgomp.so.1
	LD_LIBRARY_PATH=$(CURDIR)/build/tsan/omp TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66" \
	ROSA_TSAN=1 $(TEST_ENV) ROSA_TESTDATA=build/testdata ROSA_BIN=build/tsan/rosa build/tsan/test_rosa

# Fuzzing with libFuzzer (clang, ASan + UBSan): each target fuzz/fuzz_*.c runs
# FUZZ_SECONDS (FUZZ_TARGETS="config data" for some) from its seed corpus
# fuzz/corpus/<target>; binaries, new corpus and findings in build/fuzz/.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                -std=c11 -D_GNU_SOURCE $(WARN) -fopenmp -march=native -Iinclude -Isrc -MMD -MP
FUZZ_BIN     := $(patsubst fuzz/%.c,build/fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/%.o)
build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
build/fuzz/fuzz_%: build/fuzz/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) $(CLI_LDLIBS)
# The command line's option parser and config file are the CLI's, not the library's.
build/fuzz/fuzz_args build/fuzz/fuzz_runconfig: build/fuzz/cli/args.o build/fuzz/cli/config_file.o
fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)
	ROSA_SHARED=$(SHARED) sh fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=60

demo: deps all
	@sh tools/demo.sh $(BUILD)/rosa $(SHARED)

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(PIC_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_SRC:%.c=$(BUILD)/%.d)
-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:build/fuzz/%=build/fuzz/fuzz/%.d)
.SECONDARY:
