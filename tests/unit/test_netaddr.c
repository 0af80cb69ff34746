/* Addresses, CIDR ranges and the client behind trusted proxies: who an exchange is counted
 * against. An attacker controls the left part of X-Forwarded-For and, with IPv6, a whole /64;
 * neither may buy a fresh identity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "houston_auth/netaddr.h"

static struct ha_cidr cidr(const char *s)
{
    struct ha_cidr c;
    assert_int_equal(ha_cidr_parse(s, strlen(s), &c), HA_OK);
    return c;
}

static struct ha_ipaddr addr(const char *s)
{
    struct ha_ipaddr a;
    assert_int_equal(ha_ipaddr_parse(s, strlen(s), &a), HA_OK);
    return a;
}

static void test_parse(void **state)
{
    const char *bad[] = {"",           "1.2.3",      "1.2.3.4/33", "1.2.3.4/", "10.0.0.1/8",
                         "1.2.3.4/08", "::1/129",    "fe80::1%1",  "[::1]",    "1.2.3.4:80",
                         " 1.2.3.4",   "1.2.3.4/-1", "1.2.3.4/8x", "::/1000",  "01.2.3.4x"};
    struct ha_cidr c;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(ha_cidr_parse(bad[i], strlen(bad[i]), &c), HA_OK);
    c = cidr("10.0.0.0/8");
    assert_int_equal(c.prefix, 8);
    c = cidr("192.0.2.7");
    assert_int_equal(c.prefix, 32);
    c = cidr("2001:db8::/32");
    assert_int_equal(c.prefix, 32);
    assert_true(c.addr.v6);
    /* IPv4-mapped IPv6 is folded to IPv4 (a dual-stack socket reports peers that way). */
    assert_false(addr("::ffff:192.0.2.1").v6);
}

static void test_contains(void **state)
{
    struct ha_cidr ten = cidr("10.0.0.0/8"), v6 = cidr("2001:db8:1::/48"), all = cidr("0.0.0.0/0");
    struct ha_ipaddr a;
    (void)state;
    a = addr("10.255.1.2");
    assert_true(ha_cidr_contains(&ten, &a));
    a = addr("11.0.0.1");
    assert_false(ha_cidr_contains(&ten, &a));
    a = addr("::ffff:10.1.1.1");
    assert_true(ha_cidr_contains(&ten, &a));
    a = addr("2001:db8:1:ffff::1");
    assert_true(ha_cidr_contains(&v6, &a));
    a = addr("2001:db8:2::1");
    assert_false(ha_cidr_contains(&v6, &a));
    assert_false(ha_cidr_contains(&ten, &a)); /* families never match */
    a = addr("203.0.113.9");
    assert_true(ha_cidr_contains(&all, &a));
    {
        struct ha_cidr odd = cidr("192.0.2.128/25");
        a = addr("192.0.2.127");
        assert_false(ha_cidr_contains(&odd, &a));
        a = addr("192.0.2.200");
        assert_true(ha_cidr_contains(&odd, &a));
    }
}

static const char *key(const char *peer, const char *xff, const struct ha_cidr *p, size_t n)
{
    static char k[HA_CLIENT_KEY_LEN];
    if (ha_client_key(peer, xff, p, n, k) != HA_OK)
        return "(invalid)";
    return k;
}

static void test_client_key(void **state)
{
    struct ha_cidr p[2] = {cidr("10.0.0.0/8"), cidr("fd00::/8")};
    (void)state;
    /* No trusted proxy: the peer, whatever the header says. */
    assert_string_equal(key("203.0.113.5", "198.51.100.1", NULL, 0), "v4 203.0.113.5");
    assert_string_equal(key("203.0.113.5", "198.51.100.1", p, 2), "v4 203.0.113.5");
    /* From a trusted proxy: the rightmost hop that is not one. */
    assert_string_equal(key("10.0.0.2", "198.51.100.1", p, 2), "v4 198.51.100.1");
    assert_string_equal(key("10.0.0.2", "1.1.1.1, 2.2.2.2 ,198.51.100.1", p, 2), "v4 198.51.100.1");
    assert_string_equal(key("10.0.0.2", "1.1.1.1,198.51.100.1, 10.0.0.9", p, 2), "v4 198.51.100.1");
    /* A forged left part changes nothing; garbage stops the walk at the last good hop. */
    assert_string_equal(key("10.0.0.2", "garbage, 198.51.100.1", p, 2), "v4 198.51.100.1");
    assert_string_equal(key("10.0.0.2", "198.51.100.1, garbage", p, 2), "v4 10.0.0.2");
    assert_string_equal(key("10.0.0.2", "", p, 2), "v4 10.0.0.2");
    assert_string_equal(key("10.0.0.2", ",,,", p, 2), "v4 10.0.0.2");
    assert_string_equal(key("10.0.0.2", NULL, p, 2), "v4 10.0.0.2");
    /* All hops trusted: the leftmost of them. */
    assert_string_equal(key("10.0.0.2", "10.9.9.9, 10.0.0.3", p, 2), "v4 10.9.9.9");
    /* IPv6: one identity per /64. */
    assert_string_equal(key("2001:db8:aaaa:bbbb:1::1", NULL, p, 2), "v6 2001:0db8:aaaa:bbbb::/64");
    assert_string_equal(key("2001:db8:aaaa:bbbb:ffff::2", NULL, p, 2),
                        "v6 2001:0db8:aaaa:bbbb::/64");
    assert_string_equal(key("fd00::1", "2001:db8::7", p, 2), "v6 2001:0db8:0000:0000::/64");
    assert_string_equal(key("::ffff:198.51.100.4", NULL, p, 2), "v4 198.51.100.4");
    assert_string_equal(key("", NULL, p, 2), "(invalid)");
    assert_string_equal(key(NULL, NULL, p, 2), "(invalid)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_contains),
        cmocka_unit_test(test_client_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
