/* strikes: ten malformed messages within a minute ban a peer for a minute;
 * fewer, or spread out, do not; a ban ends; peers are told apart by key or
 * routing id; the table stays bounded. */
#include "master/strikes.h"

#include "common/tests/ty_test.h"

#include <stdio.h>

int main(void) {
    ty_strikes_t *s = NULL;
    CHECK_EQ_INT(ty_strikes_create(&s), 0);
    int64_t t = 1000000;
    for (int i = 1; i < TY_STRIKES_MAX; i++)
        CHECK_EQ_INT(ty_strikes_add(s, "key:a", t + i), 0);
    CHECK(!ty_strikes_banned(s, "key:a", t + 100));
    CHECK_EQ_INT(ty_strikes_add(s, "key:a", t + 100), 1); /* the tenth */
    CHECK(ty_strikes_banned(s, "key:a", t + 101));
    CHECK(!ty_strikes_banned(s, "key:b", t + 101));
    CHECK_EQ_INT(ty_strikes_count_banned(s, t + 101), 1);
    CHECK_EQ_INT(ty_strikes_add(s, "key:a", t + 200), 0); /* banned already: no new ban */
    CHECK(ty_strikes_banned(s, "key:a", t + 100 + TY_STRIKES_BAN_MS - 1));
    CHECK(!ty_strikes_banned(s, "key:a", t + 100 + TY_STRIKES_BAN_MS));
    CHECK_EQ_INT(ty_strikes_count_banned(s, t + 100 + TY_STRIKES_BAN_MS), 0);

    /* spread over more than the window: never banned */
    for (int i = 0; i < 3 * TY_STRIKES_MAX; i++)
        CHECK_EQ_INT(ty_strikes_add(s, "id:0a", t + (int64_t)i * (TY_STRIKES_WINDOW_MS / 5)), 0);

    /* names */
    char n[160];
    ty_strikes_peer(n, "Q#hz3a8i1t", (const uint8_t *)"w1", 2);
    CHECK_STR(n, "key:Q#hz3a8i1t");
    ty_strikes_peer(n, "", (const uint8_t *)"\x00\xffw", 3);
    CHECK_STR(n, "id:00ff77");
    uint8_t big[200];
    memset(big, 0xab, sizeof big);
    ty_strikes_peer(n, NULL, big, sizeof big);
    CHECK_EQ_INT(strlen(n), 3 + 128);

    /* bounded: many peers, one strike each, the oldest forgotten */
    for (int i = 0; i < TY_STRIKES_PEERS + 50; i++) {
        char p[32];
        snprintf(p, sizeof p, "id:%d", i);
        ty_strikes_add(s, p, t + 10 * TY_STRIKES_WINDOW_MS + i);
    }
    ty_strikes_destroy(&s);
    CHECK(s == NULL);
    TEST_DONE();
}
