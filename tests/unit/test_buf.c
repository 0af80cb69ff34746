/* struct ha_buf: the hard cap every outside-filled buffer relies on (an append that would
 * pass it fails and leaves the buffer as it was), formatting, the query/form parameter
 * builder behind every authorize URL and Houston form, and ownership hand-over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/buf.h"
#include "houston_auth/url.h"

static void test_init_allocates_nothing(void **state)
{
    struct ha_buf b;
    (void)state;
    ha_buf_init(&b, 0);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 1024 * 1024); /* 0 means the 1 MiB default */
    ha_buf_cleanup(&b);
    ha_buf_init(&b, 10);
    assert_int_equal(b.max, 10);
    ha_buf_cleanup(&b);
}

static void test_append_grows_and_terminates(void **state)
{
    struct ha_buf b;
    char chunk[100];
    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    ha_buf_init(&b, 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(ha_buf_append(&b, chunk, sizeof(chunk)), HA_OK);
    assert_int_equal(b.len, 5000);
    assert_int_equal(strlen(b.data), 5000);
    assert_true(b.cap > b.len);
    assert_int_equal(ha_buf_append_str(&b, "end"), HA_OK);
    assert_string_equal(b.data + 5000, "end");
    /* An empty append still leaves a terminated string behind. */
    ha_buf_cleanup(&b);
    assert_int_equal(ha_buf_append(&b, "", 0), HA_OK);
    assert_non_null(b.data);
    assert_string_equal(b.data, "");
    ha_buf_cleanup(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_cap_is_exact_and_failure_leaves_buffer(void **state)
{
    struct ha_buf b;
    (void)state;
    ha_buf_init(&b, 8);
    assert_int_equal(ha_buf_append_str(&b, "12345"), HA_OK);
    assert_int_equal(ha_buf_append_str(&b, "6789"), HA_ERR_TOO_LARGE);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(ha_buf_appendf(&b, "%d", 6789), HA_ERR_TOO_LARGE);
    assert_string_equal(b.data, "12345");
    assert_int_equal(ha_buf_append_str(&b, "678"), HA_OK); /* exactly max */
    assert_string_equal(b.data, "12345678");
    assert_int_equal(ha_buf_append(&b, "9", 1), HA_ERR_TOO_LARGE);
    assert_int_equal(ha_buf_append(&b, "", 0), HA_OK);
    assert_int_equal(b.len, 8);
    ha_buf_cleanup(&b);
    /* A length that would wrap around size_t is refused, not wrapped. */
    ha_buf_init(&b, 8);
    assert_int_equal(ha_buf_append_str(&b, "ab"), HA_OK);
    assert_int_equal(ha_buf_append(&b, "x", SIZE_MAX), HA_ERR_TOO_LARGE);
    assert_string_equal(b.data, "ab");
    ha_buf_cleanup(&b);
}

static void test_appendf(void **state)
{
    struct ha_buf b;
    (void)state;
    ha_buf_init(&b, 0);
    assert_int_equal(ha_buf_appendf(&b, "%s://%s:%d", "https", "a.io", 8873), HA_OK);
    assert_int_equal(ha_buf_appendf(&b, "%.*s", 3, "/oauth"), HA_OK);
    assert_string_equal(b.data, "https://a.io:8873/oa");
    assert_int_equal(b.len, strlen("https://a.io:8873/oa"));
    ha_buf_cleanup(&b);
}

static void test_append_param_separators_and_encoding(void **state)
{
    struct ha_buf b;
    (void)state;
    ha_buf_init(&b, 0);
    assert_int_equal(ha_buf_append_param(&b, "a", "1"), HA_OK);
    assert_string_equal(b.data, "a=1");
    assert_int_equal(ha_buf_append_param(&b, "redirect uri", "https://x.io/cb?y=1&z"), HA_OK);
    assert_string_equal(b.data, "a=1&redirect%20uri=https%3A%2F%2Fx.io%2Fcb%3Fy%3D1%26z");
    ha_buf_cleanup(&b);

    ha_buf_init(&b, 0);
    assert_int_equal(ha_buf_append_str(&b, "https://t.io/authorize?"), HA_OK);
    assert_int_equal(ha_buf_append_param(&b, "scope", "openid profile"), HA_OK);
    assert_int_equal(ha_buf_append_param(&b, "state", "A-z_0.9~"), HA_OK);
    assert_string_equal(b.data, "https://t.io/authorize?scope=openid%20profile&state=A-z_0.9~");
    ha_buf_cleanup(&b);

    /* A CR/LF or '&' in a value can never start a new parameter or header. */
    ha_buf_init(&b, 0);
    assert_int_equal(ha_buf_append_param(&b, "x", "1\r\n&evil=1"), HA_OK);
    assert_string_equal(b.data, "x=1%0D%0A%26evil%3D1");
    ha_buf_cleanup(&b);
}

static void test_append_param_rolls_back_on_cap(void **state)
{
    struct ha_buf b;
    (void)state;
    ha_buf_init(&b, 12);
    assert_int_equal(ha_buf_append_param(&b, "a", "1"), HA_OK);
    assert_int_equal(ha_buf_append_param(&b, "bb", "22222222"), HA_ERR_TOO_LARGE);
    assert_string_equal(b.data, "a=1");
    assert_int_equal(b.len, 3);
    assert_int_equal(ha_buf_append_param(&b, "b", "/"), HA_OK); /* "&b=%2F" fits */
    assert_string_equal(b.data, "a=1&b=%2F");
    ha_buf_cleanup(&b);
}

static void test_steal(void **state)
{
    struct ha_buf b;
    char *s = NULL;
    (void)state;
    ha_buf_init(&b, 0);
    assert_int_equal(ha_buf_steal(&b, &s), HA_OK);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    assert_int_equal(ha_buf_append_str(&b, "hello"), HA_OK);
    assert_int_equal(ha_buf_steal(&b, &s), HA_OK);
    assert_string_equal(s, "hello");
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    /* The buffer is reusable after a steal, and the stolen string is independent of it. */
    assert_int_equal(ha_buf_append_str(&b, "again"), HA_OK);
    assert_string_equal(b.data, "again");
    assert_string_equal(s, "hello");
    free(s);
    ha_buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_allocates_nothing),
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_cap_is_exact_and_failure_leaves_buffer),
        cmocka_unit_test(test_appendf),
        cmocka_unit_test(test_append_param_separators_and_encoding),
        cmocka_unit_test(test_append_param_rolls_back_on_cap),
        cmocka_unit_test(test_steal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
