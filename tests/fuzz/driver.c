/* driver.c - runs a fuzz target without libFuzzer, as a regression test.

   Linked with one target (built with -fsanitize=address,undefined and
   without -fsanitize=fuzzer), it feeds every file of the corpus directories
   or files named on the command line to LLVMFuzzerTestOneInput, or, with no
   arguments, every file of FUZZ_CORPUS (set at build time). Each input runs
   in a child process, so one crash is counted and named and the rest still
   run. The last line is "N passed, N failed", as tests/run.sh expects. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int passed, failed;

/* Reads a whole file; NULL (and a message) when it cannot. */
static uint8_t *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0, got;
    if (!f) { printf("FAIL %s: cannot open\n", path); return NULL; }
    do {
        if (n == cap) {
            uint8_t *b = (uint8_t *)realloc(buf, cap = cap ? cap * 2 : 4096);
            if (!b) { free(buf); fclose(f); return NULL; }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    *size = n;
    return buf;
}

/* One input, in a child: a crash there (a sanitizer report, an abort from a
   broken invariant) fails this input only. */
static void run_one(const char *path) {
    size_t size = 0;
    uint8_t *data = read_file(path, &size);
    pid_t pid;
    int status = 0;
    if (!data) { failed++; return; }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        LLVMFuzzerTestOneInput(data, size);
        _exit(0);
    }
    free(data);
    if (pid < 0 || waitpid(pid, &status, 0) != pid) { printf("FAIL %s: fork/wait\n", path); failed++; return; }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) { passed++; return; }
    if (WIFSIGNALED(status)) printf("FAIL %s: killed by signal %d\n", path, WTERMSIG(status));
    else printf("FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
    failed++;
}

/* A file, or every regular file of a directory (sorted, for stable output). */
static void run_path(const char *path) {
    struct stat st;
    struct dirent **names;
    int i, n;
    if (stat(path, &st) != 0) { printf("FAIL %s: no such file or directory\n", path); failed++; return; }
    if (!S_ISDIR(st.st_mode)) { run_one(path); return; }
    n = scandir(path, &names, NULL, alphasort);
    if (n < 0) { printf("FAIL %s: cannot list\n", path); failed++; return; }
    for (i = 0; i < n; i++) {
        char full[4096];
        if (names[i]->d_name[0] != '.') {
            snprintf(full, sizeof full, "%s/%s", path, names[i]->d_name);
            if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) run_one(full);
        }
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv) {
    int i;
    if (argc < 2) {
#ifdef FUZZ_CORPUS
        run_path(FUZZ_CORPUS);
#else
        printf("usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
#endif
    }
    for (i = 1; i < argc; i++) run_path(argv[i]);
    if (passed + failed == 0) { printf("FAIL: no inputs\n"); failed++; }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
