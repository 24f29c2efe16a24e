/* test_alloc.c -- the out-of-memory policy (lib/alloc.c): abort, never NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <jansson.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"

/* An allocation no machine can satisfy ends the process instead of
 * returning NULL to a caller that would carry on. */
static void test_impossible_allocation_aborts(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(2);  /* the child's message is not the test's output */
        volatile char *p = xmalloc(SIZE_MAX / 2);
        _exit(p ? 42 : 43);  /* reached only if xmalloc returned */
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    /* abort() (SIGABRT); under ASan its allocator reports the size and
     * exits 1 before malloc returns. */
    assert_true((WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT) || (WIFEXITED(st) && WEXITSTATUS(st) == 1));
}

static void test_copies_and_zero_sizes(void **state) {
    (void)state;
    char *s = xstrdup("callbus"), *n = xstrndup("callbus", 4);
    assert_string_equal(s, "callbus");
    assert_string_equal(n, "call");
    int *z = xcalloc(0, sizeof(int));  /* never NULL, even for nothing */
    assert_non_null(z);
    z = xrealloc(z, 4 * sizeof(int));
    z[3] = 7;
    free(s);
    free(n);
    free(z);
}

static void test_jansson_allocates_through_it(void **state) {
    (void)state;
    alloc_init();
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    assert_ptr_equal(m, xmalloc);
    assert_ptr_equal(f, free);
    json_t *v = json_pack("{s:s}", "a", "b");
    assert_non_null(v);
    json_decref(v);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_impossible_allocation_aborts),
        cmocka_unit_test(test_copies_and_zero_sizes),
        cmocka_unit_test(test_jansson_allocates_through_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
