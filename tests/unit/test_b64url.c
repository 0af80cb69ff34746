/* base64url: RFC 4648 §10 vectors in the URL alphabet without padding, round trips, and the
 * strictness an attacker would probe: padding, whitespace, foreign alphabets, impossible
 * lengths and non-canonical trailing bits must all be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/b64url.h"

struct vector {
    const char *raw;
    const char *enc;
};

/* RFC 4648 §10, with the padding removed. */
static const struct vector rfc_vectors[] = {
    {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

static void test_rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc_vectors) / sizeof(rfc_vectors[0]); i++) {
        const struct vector *v = &rfc_vectors[i];
        char *enc = NULL;
        unsigned char *dec = NULL;
        size_t n = 99;
        assert_int_equal(ha_b64url_encode((const unsigned char *)v->raw, strlen(v->raw), &enc),
                         HA_OK);
        assert_string_equal(enc, v->enc);
        assert_int_equal(ha_b64url_encoded_len(strlen(v->raw)), strlen(v->enc));
        assert_int_equal(ha_b64url_decode(v->enc, strlen(v->enc), &dec, &n), HA_OK);
        assert_int_equal(n, strlen(v->raw));
        assert_memory_equal(dec, v->raw, n);
        assert_int_equal(dec[n], '\0');
        free(enc);
        free(dec);
    }
}

/* The bytes that map to '-' and '_' (62 and 63) prove the URL alphabet is used. */
static void test_url_alphabet(void **state)
{
    static const unsigned char raw[] = {0xfb, 0xff, 0xbf};
    char out[8];
    unsigned char *dec = NULL;
    size_t n = 0;
    (void)state;
    ha_b64url_encode_to(raw, sizeof(raw), out);
    assert_string_equal(out, "-_-_");
    assert_null(strpbrk(out, "+/="));
    assert_int_equal(ha_b64url_decode("-_-_", 4, &dec, &n), HA_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, raw, 3);
    free(dec);
}

static void test_roundtrip_all_lengths(void **state)
{
    unsigned char raw[300];
    (void)state;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(raw); len++) {
        char *enc = NULL;
        unsigned char *dec = NULL;
        size_t n = 0;
        assert_int_equal(ha_b64url_encode(raw, len, &enc), HA_OK);
        assert_int_equal(strlen(enc), ha_b64url_encoded_len(len));
        assert_int_not_equal(strlen(enc) % 4, 1);
        assert_int_equal(ha_b64url_decode(enc, strlen(enc), &dec, &n), HA_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, raw, len);
        free(enc);
        free(dec);
    }
}

static void expect_refused(const char *in, size_t len)
{
    unsigned char *dec = (unsigned char *)"untouched";
    size_t n = 12345;
    assert_int_equal(ha_b64url_decode(in, len, &dec, &n), HA_ERR_INVALID);
    assert_string_equal((const char *)dec, "untouched");
    assert_int_equal(n, 12345);
}

static void test_refuses_padding_and_whitespace(void **state)
{
    static const char *const bad[] = {
        "Zg==",   "Zm8=",   "Zg=",     "Zm9vZg=",      "==",       "====",     "Zm9vZg\n",
        "Zm9v  ", " Zm9v ", "Zm 9vZg", "Zm9v\r\nYmFy", "Zm9v\tYg", "Zm9vYg==",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(strlen(bad[i]) % 4, 1); /* refused for the byte, not the length */
        expect_refused(bad[i], strlen(bad[i]));
    }
}

static void test_refuses_standard_alphabet_and_junk(void **state)
{
    static const char *const bad[] = {"+/+/",
                                      "Zm9/",
                                      "Zm+v",
                                      "Zm9v!A",
                                      "Zm.v",
                                      "Zm9v%3D",
                                      "\xc3\xa9Zm",
                                      "Zm9v\x7f"
                                      "A",
                                      "Z*9v"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_not_equal(strlen(bad[i]) % 4, 1);
        expect_refused(bad[i], strlen(bad[i]));
    }
    /* An embedded NUL inside the given length is not an alphabet character. */
    expect_refused("Zm\0v", 4);
}

static void test_refuses_impossible_length(void **state)
{
    (void)state;
    expect_refused("Z", 1);
    expect_refused("Zm9vY", 5);
    expect_refused("Zm9vYmFyZ", 9);
}

/* "Zg" is the only spelling of "f": "Zh".."Zv" carry set bits past the last byte. Likewise
 * "Zm8" for "fo" ("Zm9" has a low bit set). Accepting them would let a sealed value or a JWT
 * segment be re-spelled. */
static void test_refuses_noncanonical_trailing_bits(void **state)
{
    static const char *const bad[] = {"Zh", "Zi", "Zv", "Z_", "Zm9", "Zm-", "Zm9vYh", "Zm9vYmF"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_refused(bad[i], strlen(bad[i]));
}

static void test_decode_respects_len(void **state)
{
    unsigned char *dec = NULL;
    size_t n = 0;
    (void)state;
    /* Only the first 4 characters count, even though more follow. */
    assert_int_equal(ha_b64url_decode("Zm9vYmFy", 4, &dec, &n), HA_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(dec, "foo", 3);
    free(dec);
    assert_int_equal(ha_b64url_decode("", 0, &dec, &n), HA_OK);
    assert_int_equal(n, 0);
    assert_int_equal(dec[0], '\0');
    free(dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_roundtrip_all_lengths),
        cmocka_unit_test(test_refuses_padding_and_whitespace),
        cmocka_unit_test(test_refuses_standard_alphabet_and_junk),
        cmocka_unit_test(test_refuses_impossible_length),
        cmocka_unit_test(test_refuses_noncanonical_trailing_bits),
        cmocka_unit_test(test_decode_respects_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
