/* keyset: a directory of public keys read into a set; read again only when
 * the directory changed (or forced); the keys that went are named; keys
 * revoke (common/keys.c) takes one out by its name. */
#include "master/keyset.h"

#include "common/err.h"
#include "common/keys.h"
#include "common/tests/ty_test.h"
#include "common/util.h"

#include <czmq.h>
#include <stdlib.h>
#include <unistd.h>

static char gone_names[256];

static void gone(void *arg, const char *key, const char *name) {
    (void)arg;
    CHECK(strlen(key) == 40);
    strncat(gone_names, name, sizeof gone_names - strlen(gone_names) - 2);
    strcat(gone_names, " ");
}

static char *public_of(const char *dir, const char *name) {
    char *path = ty_xasprintf("%s/%s.key", dir, name);
    zcert_t *c = zcert_load(path);
    char *k = c ? ty_xstrdup(zcert_public_txt(c)) : NULL;
    zcert_destroy(&c);
    free(path);
    return k;
}

int main(void) {
    char tmpl[] = "/tmp/ty-keyset-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    char *why = NULL;
    CHECK_EQ_INT(ty_keys_generate(dir, "alice", &why), 0);
    CHECK_EQ_INT(ty_keys_generate(dir, "bob", &why), 0);
    char *alice = public_of(dir, "alice"), *bob = public_of(dir, "bob");

    ty_keyset_t *ks = NULL;
    CHECK_EQ_INT(ty_keyset_create(&ks, dir), 0);
    CHECK_EQ_INT(ty_keyset_size(ks), 2);
    CHECK_STR(ty_keyset_name(ks, alice), "alice");
    CHECK_STR(ty_keyset_name(ks, bob), "bob");
    CHECK(ty_keyset_name(ks, "0000000000000000000000000000000000000000") == NULL);
    CHECK(ty_keyset_name(ks, "") == NULL);
    /* unchanged: not read again */
    CHECK_EQ_INT(ty_keyset_refresh(ks, 0, gone, NULL), 0);

    /* revoked by name: the file renamed, the next look says bob went */
    char *moved = NULL;
    CHECK_EQ_INT(ty_keys_revoke(dir, "bob", &moved, &why), 0);
    CHECK_CONTAINS(moved, "/bob.key.revoked");
    CHECK(access(moved, F_OK) == 0);
    CHECK_EQ_INT(ty_keyset_refresh(ks, 0, gone, NULL), 1);
    CHECK_STR(gone_names, "bob ");
    CHECK(ty_keyset_name(ks, bob) == NULL);
    CHECK_STR(ty_keyset_name(ks, alice), "alice");
    free(moved);
    /* a second revoke of the name finds nothing; a fresh bob key can be
     * revoked too, next to the first one */
    CHECK_EQ_INT(ty_keys_revoke(dir, "bob", &moved, &why), TY_ENOENT);
    CHECK_CONTAINS(why, "no key named 'bob'");
    free(why);
    why = NULL;
    char *secret = ty_xasprintf("%s/bob.key_secret", dir); /* (the user's, not the master's) */
    CHECK(unlink(secret) == 0);
    free(secret);
    CHECK_EQ_INT(ty_keys_generate(dir, "bob", &why), 0);
    CHECK_EQ_INT(ty_keys_revoke(dir, "bob", &moved, &why), 0);
    CHECK_CONTAINS(moved, "/bob.key.revoked.2");
    free(moved);

    /* found by the name its certificate carries, whatever the file is called */
    char *from = ty_xasprintf("%s/alice.key", dir), *to = ty_xasprintf("%s/a-laptop.key", dir);
    CHECK(rename(from, to) == 0);
    CHECK_EQ_INT(ty_keyset_refresh(ks, 1, gone, NULL), 1);
    CHECK_STR(ty_keyset_name(ks, alice), "alice");
    CHECK_EQ_INT(ty_keys_revoke(dir, "alice", &moved, &why), 0);
    CHECK_CONTAINS(moved, "/a-laptop.key.revoked");
    free(moved);
    gone_names[0] = 0;
    CHECK_EQ_INT(ty_keyset_refresh(ks, 0, gone, NULL), 1);
    CHECK_STR(gone_names, "alice ");
    CHECK_EQ_INT(ty_keyset_size(ks), 0);
    ty_keyset_destroy(&ks);

    /* a directory that is not there: an empty set */
    char *none = ty_xasprintf("%s/none", dir);
    CHECK_EQ_INT(ty_keyset_create(&ks, none), 0);
    CHECK_EQ_INT(ty_keyset_size(ks), 0);
    ty_keyset_destroy(&ks);

    char *cmd = ty_xasprintf("rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    free(cmd);
    free(none);
    free(from);
    free(to);
    free(alice);
    free(bob);
    TEST_DONE();
}
