/* wsr_test.h - the smallest test harness that does the job.

   A test file defines test functions with TEST(name), registers nothing by
   hand, and ends with TEST_MAIN(). Each CHECK counts one passed or failed
   assertion; a failed one prints file:line and the expression. main() prints
   "N passed, N failed" as its last line and exits 0 only if nothing failed,
   which is what tests/run.sh adds up. */
#ifndef WSR_TEST_H
#define WSR_TEST_H
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

typedef void (*wsr_test_fn)(void);
static struct { const char *name; wsr_test_fn fn; } wsr_test_list[512];
static int wsr_test_count, wsr_test_passed, wsr_test_failed;
static const char *wsr_test_current = "";

#if defined(__GNUC__) || defined(__clang__)
#define WSR_TEST_CTOR __attribute__((constructor))
#define TEST(tname)                                                         \
    static void test_##tname(void);                                         \
    WSR_TEST_CTOR static void test_reg_##tname(void) {                      \
        wsr_test_list[wsr_test_count].name = #tname;                        \
        wsr_test_list[wsr_test_count++].fn = test_##tname;                  \
    }                                                                       \
    static void test_##tname(void)
#else
#error "tests need GCC or Clang (constructor attribute)"
#endif

#define CHECK(expr)                                                         \
    do {                                                                    \
        if (expr) wsr_test_passed++;                                        \
        else {                                                              \
            wsr_test_failed++;                                              \
            printf("FAIL %s (%s:%d): %s\n", wsr_test_current, __FILE__,     \
                   __LINE__, #expr);                                        \
        }                                                                   \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                  \
    do {                                                                    \
        long long wsr_a_ = (long long)(a), wsr_b_ = (long long)(b);         \
        if (wsr_a_ == wsr_b_) wsr_test_passed++;                            \
        else {                                                              \
            wsr_test_failed++;                                              \
            printf("FAIL %s (%s:%d): %s == %s (%lld vs %lld)\n",            \
                   wsr_test_current, __FILE__, __LINE__, #a, #b, wsr_a_,    \
                   wsr_b_);                                                 \
        }                                                                   \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                  \
    do {                                                                    \
        const char *wsr_a_ = (a), *wsr_b_ = (b);                            \
        if (wsr_a_ && wsr_b_ && strcmp(wsr_a_, wsr_b_) == 0) wsr_test_passed++; \
        else {                                                              \
            wsr_test_failed++;                                              \
            printf("FAIL %s (%s:%d): %s == %s (\"%s\" vs \"%s\")\n",        \
                   wsr_test_current, __FILE__, __LINE__, #a, #b,            \
                   wsr_a_ ? wsr_a_ : "(null)", wsr_b_ ? wsr_b_ : "(null)"); \
        }                                                                   \
    } while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

/* Runs every test, or only those whose name contains argv[1]. */
#define TEST_MAIN()                                                         \
    int main(int argc, char **argv) {                                       \
        int i;                                                              \
        setvbuf(stdout, NULL, _IONBF, 0);                                   \
        for (i = 0; i < wsr_test_count; i++) {                              \
            int before = wsr_test_failed;                                   \
            if (argc > 1 && !strstr(wsr_test_list[i].name, argv[1])) continue; \
            wsr_test_current = wsr_test_list[i].name;                       \
            wsr_test_list[i].fn();                                          \
            if (argc > 1 || wsr_test_failed != before)                      \
                printf("%s %s\n", wsr_test_failed != before ? "not ok" : "ok", \
                       wsr_test_list[i].name);                              \
        }                                                                   \
        printf("%d passed, %d failed\n", wsr_test_passed, wsr_test_failed); \
        return wsr_test_failed ? 1 : 0;                                     \
    }
#endif
