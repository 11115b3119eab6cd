# Build every bpf/NAME.bpf.c into build/NAME.bpf.o.
#   make            all programs
#   make NAME       one program (e.g. make hello)
#   make clean      remove build output (results live in docs/results/, and stay)
#   CLANG=clang-19 make   use another clang
#   make SRC=DIR BUILD=OUT   programs and shared headers from DIR (nox -s mutants)
#   make EXAMPLES=DIR        examples/NAME/NAME.bpf.c from DIR (nox -s mutants)
CLANG ?= clang
BUILD ?= build
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
# Debian keeps asm/types.h under the multiarch include directory, which
# clang -target bpf does not search by itself.
MULTIARCH := $(shell uname -m)-linux-gnu
# Before BPF_CFLAGS: `:=` expands $(SRC) where it stands.
SRC ?= bpf
BPF_CFLAGS := -target bpf -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter \
	-D__TARGET_ARCH_$(ARCH) -I/usr/include/$(MULTIARCH) -I$(SRC) -Ibpf -Ibpflab/include

SOURCES := $(wildcard $(SRC)/*.bpf.c)
PROGRAMS := $(patsubst $(SRC)/%.bpf.c,%,$(SOURCES))
OBJECTS := $(patsubst %,$(BUILD)/%.bpf.o,$(PROGRAMS))
HEADERS := $(wildcard $(SRC)/*.h)

TEST_SOURCES := $(wildcard tests/bpf/*.bpf.c)
TEST_OBJECTS := $(patsubst tests/bpf/%.bpf.c,$(BUILD)/tests/%.bpf.o,$(TEST_SOURCES))
# User-space helpers of the tests (e.g. a two-CPU race driver for test-run).
TEST_TOOLS := $(BUILD)/tests/race_test_run

# examples/NAME/NAME.bpf.c: programs of their own kind, tested through the public API.
EXAMPLES ?= examples
EXAMPLE_SOURCES := $(wildcard $(EXAMPLES)/*/*.bpf.c)
EXAMPLE_OBJECTS := $(patsubst %.bpf.c,$(BUILD)/examples/%.bpf.o,$(notdir $(EXAMPLE_SOURCES)))

BENCH_SRC ?= bench/bpf
BENCH_SOURCES := $(wildcard $(BENCH_SRC)/*.bpf.c)
BENCH_OBJECTS := $(patsubst $(BENCH_SRC)/%.bpf.c,$(BUILD)/bench/%.bpf.o,$(BENCH_SOURCES))
# The C reference consumer the ring benchmark compares Python's with.
BENCH_TOOLS := $(BUILD)/bench/ring_count
# Native helpers of the loaders, loaded with ctypes (Maglev's table fill).
NATIVE := $(BUILD)/native/libbpflab_maglev.so
NATIVE_SRC ?= loaders/maglev.c

VERIFIER_SOURCES := $(wildcard bpf/verifier/*.bpf.c)
VERIFIER_OBJECTS := $(patsubst bpf/verifier/%.bpf.c,$(BUILD)/verifier/%.bpf.o,$(VERIFIER_SOURCES))
# The corpus by clang-19 too (the suite checks both compilers' output), built
# here so that a VM of the kernel matrix finds it ready instead of running
# clang under emulation.
# Only where that compiler is installed (scripts/setup.sh installs it): plain
# `make` needs nothing but the default clang.
VERIFIER_CLANG_19 ?= clang-19
VERIFIER_OBJECTS_19 := $(if $(shell command -v $(VERIFIER_CLANG_19)),$(patsubst bpf/verifier/%.bpf.c,$(BUILD)/verifier-clang-19/%.bpf.o,$(VERIFIER_SOURCES)))

.PHONY: all clean verifier $(PROGRAMS)
.DELETE_ON_ERROR:

all: $(OBJECTS) $(VERIFIER_OBJECTS) $(VERIFIER_OBJECTS_19) $(TEST_OBJECTS) $(TEST_TOOLS) $(BENCH_OBJECTS) $(BENCH_TOOLS) $(EXAMPLE_OBJECTS) $(NATIVE)

verifier: $(VERIFIER_OBJECTS) $(VERIFIER_OBJECTS_19)

$(PROGRAMS): %: $(BUILD)/%.bpf.o

$(BUILD)/%.bpf.o: $(SRC)/%.bpf.c $(HEADERS) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/verifier/%.bpf.o: bpf/verifier/%.bpf.c $(HEADERS) | $(BUILD)/verifier
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/verifier-clang-19/%.bpf.o: bpf/verifier/%.bpf.c $(HEADERS) | $(BUILD)/verifier-clang-19
	$(VERIFIER_CLANG_19) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/tests/%.bpf.o: tests/bpf/%.bpf.c $(HEADERS) $(wildcard tests/bpf/*.h) | $(BUILD)/tests
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/%.c | $(BUILD)/tests
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lbpf -lpthread

.SECONDEXPANSION:
$(BUILD)/examples/%.bpf.o: $(EXAMPLES)/$$*/$$*.bpf.c | $(BUILD)/examples
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bench/%.bpf.o: $(BENCH_SRC)/%.bpf.c $(HEADERS) | $(BUILD)/bench
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bench/%: bench/c/%.c | $(BUILD)/bench
	$(CC) -O2 -Wall -Wextra -Werror -o $@ $< -lbpf

$(NATIVE): $(NATIVE_SRC) | $(BUILD)/native
	$(CC) -O2 -Wall -Wextra -Werror -shared -fPIC -o $@ $<

$(BUILD) $(BUILD)/verifier $(BUILD)/verifier-clang-19 $(BUILD)/tests $(BUILD)/bench $(BUILD)/examples $(BUILD)/native:
	mkdir -p $@

clean:
	rm -rf $(BUILD)
