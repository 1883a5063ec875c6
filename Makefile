# ws_reconnect.h - build, test and demo.
#   make          the tools and examples
#   make test     every test; the last line says "N passed, N failed"
#   make demo     a server and a client on 127.0.0.1 showing the main job
CC      ?= cc
CXX     ?= c++
CLANG   ?= clang
WARN     = -Wall -Wextra -Wpedantic -Werror
CFLAGS  ?= -O2 -g
STD_C    = -std=c99 $(WARN)
STD_CXX  = -std=c++11 $(WARN)
LDLIBS   = -pthread
B        = build

HEADER   = ws_reconnect.h
# test_tls_win is the wss:// test for Windows (make test-windows); its
# cases are a subset of test_tls, which runs here.
TEST_SRC = $(filter-out tests/test_tls_win.c,$(wildcard tests/test_*.c))
TEST_H   = $(wildcard tests/*.h)
TESTS    = $(patsubst tests/%.c,$(B)/%,$(TEST_SRC))
EXAMPLES = $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
TOOLS    = $(patsubst tools/%.c,$(B)/tools/%,$(wildcard tools/*.c)) $(B)/tools/wsrcat-notls
COMPILE_TESTS = $(B)/compile_c $(B)/compile_clang $(B)/compile_cpp $(B)/compile_static $(B)/compile_split \
                $(B)/compile_nothreads $(B)/compile_tls $(B)/compile_tls_cpp \
                $(B)/compile_mingw $(B)/compile_mingw_cpp $(B)/compile_clang_mingw

.PHONY: all test run-tests test-valgrind test-windows demo bench clean tools examples fuzz
all: tools examples
tools: $(TOOLS)
examples: $(EXAMPLES)

$(B)/%: tests/%.c $(HEADER) $(TEST_H) | $(B)
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

$(B)/examples/%: examples/%.c $(HEADER) | $(B)
	@mkdir -p $(B)/examples
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

$(B)/tools/%: tools/%.c tools/tool_os.h $(HEADER) | $(B)
	@mkdir -p $(B)/tools
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)

# The header must build as C99 with gcc and clang, as C++11, with WSR_STATIC in
# two translation units, and as a declarations-only unit linked with the
# implementation unit (this catches include-guard mistakes); and without
# threads (WSR_NO_THREADS, linked without -pthread).
$(B)/compile_c: tests/compile_c.c $(HEADER) | $(B)
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)
$(B)/compile_clang: tests/compile_c.c $(HEADER) | $(B)
	$(CLANG) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)
$(B)/compile_cpp: tests/compile_cpp.cpp $(HEADER) | $(B)
	$(CXX) $(STD_CXX) $(CFLAGS) -I. $< -o $@ $(LDLIBS)
$(B)/compile_static: tests/compile_static_a.c tests/compile_static_b.c $(HEADER) | $(B)
	$(CC) $(STD_C) $(CFLAGS) -I. tests/compile_static_a.c tests/compile_static_b.c -o $@ $(LDLIBS)
$(B)/compile_nothreads: tests/compile_nothreads.c $(HEADER) | $(B)
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@
$(B)/compile_split: tests/compile_split_decl.c tests/compile_split_impl.c $(HEADER) | $(B)
	$(CC) $(STD_C) $(CFLAGS) -I. tests/compile_split_decl.c tests/compile_split_impl.c -o $@ $(LDLIBS)

# The same tests built with AddressSanitizer and UndefinedBehaviorSanitizer:
# any report aborts the program, which the runner counts as a failure.
SAN      = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASAN_TESTS = $(patsubst tests/%.c,$(B)/asan/%,$(TEST_SRC))
$(B)/asan/%: tests/%.c $(HEADER) $(TEST_H) | $(B)
	@mkdir -p $(B)/asan
	$(CC) $(STD_C) -O1 -g $(SAN) -I. $< -o $@ $(LDLIBS)

# TLS (wss://) through mbedTLS: the programs that define WSR_USE_MBEDTLS
# link it. test_tls is also built with clang and as C++ (compile_tls*).
# wsrcat and the wss_client example get the define here, on the command line
# (override: `make CFLAGS=-O0` must not build them without TLS).
MBEDTLS_LIBS = -lmbedtls -lmbedx509 -lmbedcrypto
$(B)/test_tls $(B)/asan/test_tls: LDLIBS += $(MBEDTLS_LIBS)
$(B)/test_wsrcat $(B)/asan/test_wsrcat: LDLIBS += $(MBEDTLS_LIBS)
$(B)/tools/wsrcat $(B)/examples/wss_client: override CFLAGS += -DWSR_USE_MBEDTLS
$(B)/tools/wsrcat $(B)/examples/wss_client: LDLIBS += $(MBEDTLS_LIBS)
# wsrcat once more without TLS (one of $(TOOLS)): it must still build, and
# refuse wss:// and the TLS options clearly (tests/test_wsrcat.c runs it).
$(B)/tools/wsrcat-notls: tools/wsrcat.c tools/tool_os.h $(HEADER) | $(B)
	@mkdir -p $(B)/tools
	$(CC) $(STD_C) $(CFLAGS) -I. $< -o $@ $(LDLIBS)
$(B)/compile_tls: tests/compile_c.c $(HEADER) | $(B)
	$(CLANG) $(STD_C) $(CFLAGS) -DWSR_USE_MBEDTLS -I. $< -o $@ $(LDLIBS) $(MBEDTLS_LIBS)
$(B)/compile_tls_cpp: tests/compile_cpp.cpp $(HEADER) | $(B)
	$(CXX) $(STD_CXX) $(CFLAGS) -DWSR_USE_MBEDTLS -I. $< -o $@ $(LDLIBS) $(MBEDTLS_LIBS)

# The Windows build must compile too, as C99 and as C++ (mingw-w64, with
# warnings as errors). The program made is a check that the .exe is a
# Windows executable; make test-windows runs the real tests under wine.
MINGW_CC  ?= x86_64-w64-mingw32-gcc
MINGW_CXX ?= x86_64-w64-mingw32-g++
MINGW_LIBS = -static -lws2_32 -lbcrypt
define PE_CHECK
printf '#!/bin/sh\nif [ "$$(head -c 2 "%s.exe")" = MZ ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi\n' "$@" > $@ && chmod +x $@
endef
$(B)/compile_mingw: tests/compile_c.c $(HEADER) | $(B)
	$(MINGW_CC) $(STD_C) -O2 -I. $< -o $@.exe $(MINGW_LIBS)
	@$(PE_CHECK)
$(B)/compile_mingw_cpp: tests/compile_cpp.cpp $(HEADER) | $(B)
	$(MINGW_CXX) $(STD_CXX) -O2 -I. $< -o $@.exe $(MINGW_LIBS)
	@$(PE_CHECK)
# clang for Windows too (against the mingw-w64 headers; compiled, not
# linked: Debian's clang has no Windows runtime). The check: an x86-64 COFF
# object, whose first two bytes are the machine type 0x8664.
$(B)/compile_clang_mingw: tests/compile_c.c $(HEADER) | $(B)
	$(CLANG) --target=x86_64-w64-mingw32 $(STD_C) -O2 -I. -c $< -o $@.obj
	@printf '#!/bin/sh\nif [ "$$(od -An -tx1 -N2 "%s.obj" | tr -d " ")" = 6486 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi\n' "$@" > $@ && chmod +x $@

# Fuzz targets (tests/fuzz/README.md). make test runs each one over its
# corpus without libFuzzer, under ASan and UBSan (a few seconds); make fuzz
# runs each with libFuzzer for FUZZ_SECONDS (default 60), one at a time.
FUZZ_SRC     = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REGRESS = $(patsubst tests/fuzz/%.c,$(B)/fuzz/regress_%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60
$(B)/fuzz/regress_%: tests/fuzz/%.c tests/fuzz/driver.c $(wildcard tests/fuzz/*.h) $(HEADER) | $(B)
	@mkdir -p $(B)/fuzz
	$(CC) $(STD_C) -O1 -g $(SAN) -I. -DFUZZ_CORPUS='"tests/fuzz/corpus/$*"' $< tests/fuzz/driver.c -o $@ $(LDLIBS)

fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_OUT=$(B)/fuzz CLANG=$(CLANG) tests/fuzz/run.sh

# The tests that use the thread runner, once more under ThreadSanitizer.
TSAN_TESTS = $(B)/tsan/test_reconnect_live $(B)/tsan/test_reentry
$(B)/tsan/%: tests/%.c $(HEADER) $(TEST_H) | $(B)
	@mkdir -p $(B)/tsan
	$(CC) $(STD_C) -O1 -g -fsanitize=thread -I. $< -o $@ -pthread

$(B):
	@mkdir -p $(B)

# test and demo first install what is missing (tools/deps.sh), then build.
test:
	@tools/deps.sh
	@$(MAKE) --no-print-directory run-tests

# The benchmark is built (so it keeps compiling), not run: speed is `make bench`'s.
run-tests: $(COMPILE_TESTS) $(TESTS) $(ASAN_TESTS) $(TSAN_TESTS) $(FUZZ_REGRESS) $(EXAMPLES) $(TOOLS) $(B)/bench/wsr-bench
	@tests/run.sh $(COMPILE_TESTS) $(TESTS) $(ASAN_TESTS) $(TSAN_TESTS) $(FUZZ_REGRESS)

# Slower: every test under valgrind (leaks and uninitialised reads).
test-valgrind: $(TESTS)
	@WSR_TEST_WRAP="valgrind -q --error-exitcode=9 --leak-check=full" tests/run.sh $(TESTS)

# The tests that run on Windows, cross-compiled with mingw-w64 and run under
# wine (both installed when missing). Prints "N passed, N failed".
test-windows:
	@B=$(B) tools/test-windows.sh

# make bench: ws_reconnect.h against raw TCP, Node's ws and Python's
# websockets (tools/bench/README.md). BENCH_ARGS=--full for the long run.
# -O2 whatever CFLAGS says: numbers from an unoptimised build mean nothing.
BENCH_ARGS ?= --quick
$(B)/bench/wsr-bench: tools/bench/wsr-bench.c $(HEADER) | $(B)
	@mkdir -p $(B)/bench
	$(CC) $(STD_C) -O2 -g -I. $< -o $@ $(LDLIBS)

bench:
	@tools/deps.sh
	@$(MAKE) --no-print-directory $(B)/bench/wsr-bench
	@$(B)/bench/wsr-bench $(BENCH_ARGS)

demo:
	@tools/deps.sh
	@$(MAKE) --no-print-directory $(B)/tools/wsr-echo $(B)/examples/demo_client
	@tools/demo.sh $(B)

clean:
	rm -rf $(B)
