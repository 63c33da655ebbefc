/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "digestmap.h"
#include "macro.h"
#include "metastore-backend.h"

/* Limits on what the store hands to the decoder: a directory record larger
 * than this is refused as corrupt rather than decoded. */
#define DIRECTORY_MAX_BYTES (64u * 1024 * 1024)

void cas_metastore_init(cas_metastore *ms, const metastore_ops *ops)
{
        ms->ops = ops;
        pthread_mutex_init(&ms->pending_lock, NULL);
}

cas_metastore *cas_metastore_free(cas_metastore *ms)
{
        if (!ms)
                return NULL;
        free(ms->pending_keys);
        free(ms->pending_digests);
        pthread_mutex_destroy(&ms->pending_lock);
        ms->ops->free(ms);
        return NULL;
}

/* ---- directories ---- */

int cas_metastore_get_directory(cas_metastore *ms, const cas_digest *d, cas_directory **ret)
{
        _cleanup_free_ void *buf = NULL;
        size_t len;
        cas_digest check;
        int r;

        r = ms->ops->get_dir(ms, d, &buf, &len);
        if (r < 0)
                return r;
        if (len > DIRECTORY_MAX_BYTES)
                return -EBADMSG;
        /* the record must be what its key promises */
        cas_digest_of(buf, len, &check);
        if (!cas_digest_eq(&check, d))
                return -EBADMSG;
        return cas_directory_decode(buf, len, ret, NULL);
}

int cas_metastore_has_directory(cas_metastore *ms, const cas_digest *d)
{
        return ms->ops->has_dir(ms, d);
}

static int closure_fail(cas_error *e, cas_error_code code, const cas_node *n)
{
        if (e) {
                e->code = code;
                if (n)
                        snprintf(e->detail, sizeof(e->detail), "'%.*s'", (int)MIN(n->name_len, 100u),
                                 n->name);
                else
                        e->detail[0] = 0;
        }
        return -EBADMSG;
}

int cas_metastore_put_closure(cas_metastore *ms, cas_directory *const *dirs, size_t n,
                              cas_digest *ret_root, cas_error *ret_err)
{
        cas_digest_map seen = {0}; /* digest -> index into the arrays below */
        _cleanup_free_ cas_digest *digests = calloc(n ?: 1, sizeof(cas_digest));
        _cleanup_free_ uint8_t **bufs = calloc(n ?: 1, sizeof(uint8_t *));
        _cleanup_free_ size_t *lens = calloc(n ?: 1, sizeof(size_t));
        _cleanup_free_ uint64_t *sizes = calloc(n ?: 1, sizeof(uint64_t));
        _cleanup_free_ bool *referenced = calloc(n ?: 1, sizeof(bool));
        size_t n_unique = 0, root = 0, n_roots = 0;
        int r = 0;

        if (!digests || !bufs || !lens || !sizes || !referenced)
                return -ENOMEM;
        if (n == 0)
                return closure_fail(ret_err, CAS_ERR_ROOTS, NULL);

        for (size_t i = 0; i < n; i++) {
                const cas_directory *dir = dirs[i];
                cas_digest dg;
                uint8_t *buf;
                size_t len;

                r = cas_directory_validate(dir, ret_err);
                if (r < 0)
                        goto finish;
                r = cas_directory_encode(dir, &buf, &len);
                if (r < 0)
                        goto finish;
                cas_digest_of(buf, len, &dg);
                if (cas_digest_map_get(&seen, &dg, NULL)) {
                        free(buf); /* the same directory twice: once is enough */
                        continue;
                }

                /* every child must be known already, with the size the parent claims */
                for (size_t c = 0; c < dir->n_directories; c++) {
                        const cas_node *child = &dir->directories[c];
                        uint64_t idx, child_size;
                        if (cas_digest_map_get(&seen, &child->digest, &idx)) {
                                child_size = sizes[idx];
                                referenced[idx] = true;
                        } else {
                                _cleanup_free_ cas_directory *stored = NULL;
                                r = cas_metastore_get_directory(ms, &child->digest, &stored);
                                if (r == -ENOENT) {
                                        free(buf);
                                        r = closure_fail(ret_err, CAS_ERR_DANGLING, child);
                                        goto finish;
                                }
                                if (r < 0) {
                                        free(buf);
                                        goto finish;
                                }
                                if (cas_directory_size(stored, &child_size) < 0)
                                        child_size = UINT64_MAX;
                        }
                        if (child_size != child->size) {
                                free(buf);
                                r = closure_fail(ret_err, CAS_ERR_SIZE_MISMATCH, child);
                                goto finish;
                        }
                }

                digests[n_unique] = dg;
                bufs[n_unique] = buf;
                lens[n_unique] = len;
                (void)cas_directory_size(dir, &sizes[n_unique]); /* validated: no overflow */
                r = cas_digest_map_put(&seen, &dg, n_unique);
                n_unique++;
                if (r < 0)
                        goto finish;
        }

        for (size_t i = 0; i < n_unique; i++)
                if (!referenced[i]) {
                        root = i;
                        n_roots++;
                }
        if (n_roots != 1) {
                r = closure_fail(ret_err, CAS_ERR_ROOTS, NULL);
                goto finish;
        }

        r = ms->ops->put_dirs(ms, digests, bufs, lens, n_unique);
        if (r >= 0 && ret_root)
                *ret_root = digests[root];
finish:
        for (size_t i = 0; i < n_unique; i++)
                free(bufs[i]);
        cas_digest_map_done(&seen);
        return r < 0 ? r : 0;
}

int cas_metastore_walk(cas_metastore *ms, const cas_digest *root, cas_directory_cb cb,
                       void *userdata)
{
        cas_digest_queue q = {0};
        cas_digest d;
        int r;

        r = cas_digest_queue_push(&q, root);
        while (r >= 0 && cas_digest_queue_pop(&q, &d)) {
                _cleanup_free_ cas_directory *dir = NULL;

                r = cas_metastore_get_directory(ms, &d, &dir);
                if (r < 0 && r != -ENOENT && r != -EBADMSG)
                        break;
                r = cb(&d, dir, r, userdata);
                if (r < 0 || !dir || r == 1)
                        continue;
                for (size_t i = 0; r >= 0 && i < dir->n_directories; i++)
                        r = cas_digest_queue_push(&q, &dir->directories[i].digest);
        }
        cas_digest_queue_done(&q);
        return r < 0 ? r : 0;
}

int cas_metastore_foreach_directory(cas_metastore *ms, cas_digest_cb cb, void *userdata)
{
        return ms->ops->foreach_dir(ms, cb, userdata);
}

int cas_metastore_put_raw_directory(cas_metastore *ms, const cas_digest *d, const void *buf,
                                    size_t len)
{
        uint8_t *bufs[1] = {(uint8_t *)(uintptr_t)buf};
        size_t lens[1] = {len};
        int r = cas_metastore_remove_directories(ms, d, 1);
        return r < 0 ? r : ms->ops->put_dirs(ms, d, bufs, lens, 1);
}

int cas_metastore_put_raw_root(cas_metastore *ms, const char *name, const void *buf, size_t len)
{
        const char *names[1] = {name};
        uint8_t *bufs[1] = {(uint8_t *)(uintptr_t)buf};
        size_t lens[1] = {len};
        return ms->ops->put_roots(ms, names, bufs, lens, 1);
}

int cas_metastore_remove_directories(cas_metastore *ms, const cas_digest *ds, size_t n)
{
        return n ? ms->ops->remove_dirs(ms, ds, n) : 0;
}

/* ---- roots ---- */

int cas_metastore_set_roots(cas_metastore *ms, cas_node *const *nodes, size_t n)
{
        _cleanup_free_ const char **names = calloc(n ?: 1, sizeof(char *));
        _cleanup_free_ uint8_t **bufs = calloc(n ?: 1, sizeof(uint8_t *));
        _cleanup_free_ size_t *lens = calloc(n ?: 1, sizeof(size_t));
        int r = 0;
        size_t i;

        if (!names || !bufs || !lens)
                return -ENOMEM;
        for (i = 0; i < n; i++) {
                r = cas_node_validate(nodes[i], false, NULL);
                if (r < 0)
                        break;
                names[i] = nodes[i]->name;
                r = cas_node_encode(nodes[i], &bufs[i], &lens[i]);
                if (r < 0)
                        break;
        }
        if (r >= 0)
                r = ms->ops->put_roots(ms, names, bufs, lens, n);
        for (size_t k = 0; k < n; k++)
                free(bufs[k]);
        return r;
}

int cas_metastore_set_root(cas_metastore *ms, const cas_node *node)
{
        cas_node *const nodes[1] = {(cas_node *)node};
        return cas_metastore_set_roots(ms, nodes, 1);
}

/* The registry's key is the root's name: a record that names another root
 * (or none) is corrupt, whether it is looked up or listed. Listing it under
 * its own name would show a name that no lookup resolves to it, and one
 * naming an intact root would shadow that root. */
static bool record_names_key(const cas_node *n, const void *key, size_t key_len)
{
        return n->name_len > 0 && n->name_len == key_len && memcmp(n->name, key, key_len) == 0;
}

int cas_metastore_get_root(cas_metastore *ms, const char *name, cas_node **ret)
{
        _cleanup_free_ void *buf = NULL;
        size_t len;
        cas_node *n;
        int r;

        r = ms->ops->get_root(ms, name, &buf, &len);
        if (r < 0)
                return r;
        r = cas_node_decode(buf, len, &n, NULL);
        if (r < 0)
                return r;
        if (!record_names_key(n, name, strlen(name))) {
                free(n);
                return -EBADMSG;
        }
        *ret = n;
        return 0;
}

int cas_metastore_remove_root(cas_metastore *ms, const char *name)
{
        const char *names[1] = {name};
        uint8_t *bufs[1] = {NULL};
        size_t lens[1] = {0};
        return ms->ops->put_roots(ms, names, bufs, lens, 1);
}

struct root_iter {
        cas_root_cb cb;               /* valid roots only */
        cas_root_record_cb record_cb; /* or every record */
        void *userdata;
};

static int root_iter_cb(const void *key, size_t key_len, const void *buf, size_t len, void *u)
{
        struct root_iter *it = u;
        _cleanup_free_ cas_node *n = NULL;
        _cleanup_free_ char *name = NULL;
        int r;

        r = cas_node_decode(buf, len, &n, NULL);
        if (r == -ENOMEM)
                return r;
        if (r >= 0 && !record_names_key(n, key, key_len)) {
                free(n);
                n = NULL;
                r = -EBADMSG;
        }
        if (!it->record_cb) /* a corrupt record is skipped here; fsck reports it */
                return r < 0 ? 0 : it->cb(n, it->userdata);
        name = strndup(key, key_len);
        if (!name)
                return -ENOMEM;
        return it->record_cb(name, n, r < 0 ? -EBADMSG : 0, it->userdata);
}

int cas_metastore_foreach_root(cas_metastore *ms, cas_root_cb cb, void *userdata)
{
        struct root_iter it = {.cb = cb, .userdata = userdata};
        return ms->ops->foreach_root(ms, root_iter_cb, &it);
}

int cas_metastore_foreach_root_record(cas_metastore *ms, cas_root_record_cb cb, void *userdata)
{
        struct root_iter it = {.record_cb = cb, .userdata = userdata};
        return ms->ops->foreach_root(ms, root_iter_cb, &it);
}

int cas_metastore_roots_generation(cas_metastore *ms, uint64_t *ret)
{
        return ms->ops->generation(ms, ret);
}

/* ---- the import cache ---- */

int cas_metastore_statcache_get(cas_metastore *ms, const cas_stat_key *k, cas_digest *ret)
{
        if (!ms->ops->statcache_get)
                return -ENOENT;
        return ms->ops->statcache_get(ms, k, ret);
}

int cas_metastore_statcache_put(cas_metastore *ms, const cas_stat_key *k, const cas_digest *d)
{
        int r = 0;

        pthread_mutex_lock(&ms->pending_lock);
        if (ms->n_pending == ms->n_pending_alloc) {
                size_t n = ms->n_pending_alloc ? ms->n_pending_alloc * 2 : 256;
                cas_stat_key *nk = realloc(ms->pending_keys, n * sizeof(*nk));
                if (nk)
                        ms->pending_keys = nk;
                cas_digest *nd = realloc(ms->pending_digests, n * sizeof(*nd));
                if (nd)
                        ms->pending_digests = nd;
                if (!nk || !nd)
                        r = -ENOMEM;
                else
                        ms->n_pending_alloc = n;
        }
        if (r >= 0) {
                ms->pending_keys[ms->n_pending] = *k;
                ms->pending_digests[ms->n_pending] = *d;
                ms->n_pending++;
        }
        pthread_mutex_unlock(&ms->pending_lock);
        return r;
}

int cas_metastore_statcache_flush(cas_metastore *ms)
{
        int r;

        pthread_mutex_lock(&ms->pending_lock);
        r = ms->n_pending && ms->ops->statcache_put
                    ? ms->ops->statcache_put(ms, ms->pending_keys, ms->pending_digests, ms->n_pending)
                    : 0;
        ms->n_pending = 0;
        pthread_mutex_unlock(&ms->pending_lock);
        return r;
}

int cas_metastore_statcache_prune(cas_metastore *ms, bool (*is_dead)(const cas_digest *d, void *u),
                                  void *userdata)
{
        if (!ms->ops->statcache_prune)
                return 0;
        return ms->ops->statcache_prune(ms, is_dead, userdata);
}

void cas_metastore_release_memory(cas_metastore *ms)
{
        if (ms->ops->release_memory)
                ms->ops->release_memory(ms);
}

/* ---- LMDB ---- */

/* The map is read without the kernel's read-around (MDB_NORDAHEAD): a
 * fault would otherwise read the device's whole read-ahead window around
 * its page (8 MiB on some machines), which for one lookup in a cold store
 * is most of the file. A reader that goes on (a walk, an import's checks)
 * has the whole file read ahead once, after LMDB_WARM_AFTER reads, when it
 * is no larger than LMDB_WARM_MAX and an eighth of the memory: the reads
 * are only queued (POSIX_FADV_WILLNEED; about 5 ms for 30 MiB), by the
 * thread that made the read, which goes on while the disk works. */
#define LMDB_WARM_AFTER 32
#define LMDB_WARM_MAX (64u * 1024 * 1024)
#define LMDB_WARM_STEP (2u * 1024 * 1024)

typedef struct lmdb_metastore {
        cas_metastore base;
        MDB_env *env;
        MDB_dbi dirs, roots, info, statcache;
        _Atomic unsigned reads;
        _Atomic bool warmed;
} lmdb_metastore;

/* Queues reads of the whole file, once. */
static void lmdb_warm(lmdb_metastore *m)
{
        struct stat st;
        int fd;

        if (atomic_exchange(&m->warmed, true))
                return;
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (mdb_env_get_fd(m->env, &fd) != 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size > LMDB_WARM_MAX ||
            (pages > 0 && page > 0 && (uint64_t)st.st_size > (uint64_t)pages * (uint64_t)page / 8))
                return;
        /* in steps: the kernel reads no more than its read-ahead window a call */
        for (off_t off = 0; off < st.st_size; off += LMDB_WARM_STEP)
                if (posix_fadvise(fd, off, LMDB_WARM_STEP, POSIX_FADV_WILLNEED) != 0)
                        break;
}

static void lmdb_count_read(lmdb_metastore *m)
{
        if (!atomic_load_explicit(&m->warmed, memory_order_relaxed) &&
            atomic_fetch_add_explicit(&m->reads, 1, memory_order_relaxed) + 1 >= LMDB_WARM_AFTER)
                lmdb_warm(m);
}

static int mdb_errno(int rc)
{
        switch (rc) {
        case 0:
                return 0;
        case MDB_NOTFOUND:
                return -ENOENT;
        case MDB_MAP_FULL:
                return -ENOSPC;
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
                return -EBADMSG;
        case MDB_READERS_FULL:
                return -EAGAIN;
        default:
                return rc > 0 ? -rc : -EIO;
        }
}

/* Ends a write transaction: commits it when rc (an LMDB status) is 0, else
 * aborts it; returns the outcome as -errno. */
static int lmdb_txn_end(MDB_txn *txn, int rc)
{
        if (rc) {
                mdb_txn_abort(txn);
                return mdb_errno(rc);
        }
        return mdb_errno(mdb_txn_commit(txn));
}

static int lmdb_get(lmdb_metastore *m, MDB_dbi dbi, const void *key, size_t klen, void **ret,
                    size_t *ret_len)
{
        MDB_txn *txn;
        MDB_val k = {klen, (void *)key}, v;
        int rc;

        lmdb_count_read(m);
        rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
        if (rc)
                return mdb_errno(rc);
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0 && ret) {
                void *copy = malloc(v.mv_size ?: 1);
                if (!copy)
                        rc = ENOMEM;
                else {
                        memcpy(copy, v.mv_data, v.mv_size);
                        *ret = copy;
                        *ret_len = v.mv_size;
                }
        }
        mdb_txn_abort(txn);
        return mdb_errno(rc);
}

static int lmdb_get_dir(cas_metastore *ms, const cas_digest *d, void **ret, size_t *ret_len)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        return lmdb_get(m, m->dirs, d->bytes, CAS_DIGEST_SIZE, ret, ret_len);
}

static int lmdb_has_dir(cas_metastore *ms, const cas_digest *d)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        int r = lmdb_get(m, m->dirs, d->bytes, CAS_DIGEST_SIZE, NULL, NULL);
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/* Puts the directories ds (bufs given) or removes them (bufs NULL) in one
 * write transaction; one there already, or gone already, is no error. */
static int lmdb_write_dirs(cas_metastore *ms, const cas_digest *ds, uint8_t *const *bufs,
                           const size_t *lens, size_t n)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        MDB_txn *txn;
        int rc;

        rc = mdb_txn_begin(m->env, NULL, 0, &txn);
        if (rc)
                return mdb_errno(rc);
        for (size_t i = 0; rc == 0 && i < n; i++) {
                MDB_val k = {CAS_DIGEST_SIZE, (void *)ds[i].bytes};
                if (bufs) {
                        MDB_val v = {lens[i], bufs[i]};
                        rc = mdb_put(txn, m->dirs, &k, &v, MDB_NOOVERWRITE);
                } else
                        rc = mdb_del(txn, m->dirs, &k, NULL);
                if (rc == MDB_KEYEXIST || rc == MDB_NOTFOUND)
                        rc = 0;
        }
        return lmdb_txn_end(txn, rc);
}

static int lmdb_foreach(lmdb_metastore *m, MDB_dbi dbi,
                        int (*cb)(const MDB_val *k, const MDB_val *v, void *u), void *userdata)
{
        MDB_txn *txn;
        MDB_cursor *c;
        MDB_val k, v;
        int rc, r = 0;

        rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
        if (rc)
                return mdb_errno(rc);
        rc = mdb_cursor_open(txn, dbi, &c);
        if (rc) {
                mdb_txn_abort(txn);
                return mdb_errno(rc);
        }
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && r == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
                r = cb(&k, &v, userdata);
        mdb_cursor_close(c);
        mdb_txn_abort(txn);
        if (r != 0)
                return r;
        return rc == MDB_NOTFOUND ? 0 : mdb_errno(rc);
}

struct dir_iter {
        cas_digest_cb cb;
        void *userdata;
};

static int dir_iter_cb(const MDB_val *k, const MDB_val *v, void *u)
{
        struct dir_iter *it = u;
        cas_digest d;

        if (k->mv_size != CAS_DIGEST_SIZE)
                return 0;
        memcpy(d.bytes, k->mv_data, CAS_DIGEST_SIZE);
        return it->cb(&d, it->userdata);
}

static int lmdb_foreach_dir(cas_metastore *ms, cas_digest_cb cb, void *userdata)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        struct dir_iter it = {cb, userdata};
        lmdb_warm(m); /* it reads them all */
        return lmdb_foreach(m, m->dirs, dir_iter_cb, &it);
}

static int lmdb_remove_dirs(cas_metastore *ms, const cas_digest *ds, size_t n)
{
        return lmdb_write_dirs(ms, ds, NULL, NULL, n);
}

static const char generation_key[] = "roots-generation";

static int lmdb_put_roots(cas_metastore *ms, const char *const *names, uint8_t *const *bufs,
                          const size_t *lens, size_t n)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        MDB_val gk = {sizeof(generation_key) - 1, (void *)generation_key}, gv;
        MDB_txn *txn;
        uint64_t gen = 0;
        int rc;

        rc = mdb_txn_begin(m->env, NULL, 0, &txn);
        if (rc)
                return mdb_errno(rc);
        for (size_t i = 0; rc == 0 && i < n; i++) {
                MDB_val k = {strlen(names[i]), (void *)names[i]};
                if (bufs[i]) {
                        MDB_val v = {lens[i], bufs[i]};
                        rc = mdb_put(txn, m->roots, &k, &v, 0);
                } else
                        rc = mdb_del(txn, m->roots, &k, NULL);
        }
        if (rc)
                return lmdb_txn_end(txn, rc);
        rc = mdb_get(txn, m->info, &gk, &gv);
        if (rc == 0 && gv.mv_size == sizeof(gen))
                memcpy(&gen, gv.mv_data, sizeof(gen));
        gen++;
        gv = (MDB_val){sizeof(gen), &gen};
        rc = mdb_put(txn, m->info, &gk, &gv, 0);
        return lmdb_txn_end(txn, rc);
}

static int lmdb_get_root(cas_metastore *ms, const char *name, void **ret, size_t *ret_len)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        size_t n = strlen(name);
        if (n == 0 || n > CAS_NAME_MAX)
                return -ENOENT;
        return lmdb_get(m, m->roots, name, n, ret, ret_len);
}

struct raw_iter {
        raw_root_cb cb;
        void *userdata;
};

static int raw_iter_cb(const MDB_val *k, const MDB_val *v, void *u)
{
        struct raw_iter *it = u;
        return it->cb(k->mv_data, k->mv_size, v->mv_data, v->mv_size, it->userdata);
}

static int lmdb_foreach_root(cas_metastore *ms, raw_root_cb cb, void *userdata)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        struct raw_iter it = {cb, userdata};
        return lmdb_foreach(m, m->roots, raw_iter_cb, &it);
}

static int lmdb_generation(cas_metastore *ms, uint64_t *ret)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        _cleanup_free_ void *buf = NULL;
        size_t len;
        int r;

        r = lmdb_get(m, m->info, generation_key, sizeof(generation_key) - 1, &buf, &len);
        if (r == -ENOENT) {
                *ret = 0;
                return 0;
        }
        if (r < 0)
                return r;
        if (len != sizeof(uint64_t))
                return -EBADMSG;
        memcpy(ret, buf, sizeof(uint64_t));
        return 0;
}

static int lmdb_statcache_get(cas_metastore *ms, const cas_stat_key *k, cas_digest *ret)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        _cleanup_free_ void *buf = NULL;
        size_t len;
        int r;

        r = lmdb_get(m, m->statcache, k, sizeof(*k), &buf, &len);
        if (r < 0)
                return r;
        if (len != CAS_DIGEST_SIZE)
                return -ENOENT;
        memcpy(ret->bytes, buf, CAS_DIGEST_SIZE);
        return 0;
}

static int lmdb_statcache_put(cas_metastore *ms, const cas_stat_key *ks, const cas_digest *ds,
                              size_t n)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        MDB_txn *txn;
        int rc;

        rc = mdb_txn_begin(m->env, NULL, 0, &txn);
        if (rc)
                return mdb_errno(rc);
        for (size_t i = 0; rc == 0 && i < n; i++) {
                MDB_val k = {sizeof(ks[i]), (void *)&ks[i]}, v = {CAS_DIGEST_SIZE, (void *)ds[i].bytes};
                rc = mdb_put(txn, m->statcache, &k, &v, 0);
        }
        return lmdb_txn_end(txn, rc);
}

static int lmdb_statcache_prune(cas_metastore *ms, bool (*is_dead)(const cas_digest *d, void *u),
                                void *userdata)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        MDB_txn *txn;
        MDB_cursor *c;
        MDB_val k, v;
        int rc;

        rc = mdb_txn_begin(m->env, NULL, 0, &txn);
        if (rc)
                return mdb_errno(rc);
        rc = mdb_cursor_open(txn, m->statcache, &c);
        if (rc)
                return lmdb_txn_end(txn, rc);
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
                cas_digest d;
                if (v.mv_size == CAS_DIGEST_SIZE) {
                        memcpy(d.bytes, v.mv_data, CAS_DIGEST_SIZE);
                        if (!is_dead(&d, userdata))
                                continue;
                }
                rc = mdb_cursor_del(c, 0);
                if (rc)
                        break;
        }
        mdb_cursor_close(c);
        return lmdb_txn_end(txn, rc == MDB_NOTFOUND ? 0 : rc);
}

/* The address range LMDB mapped meta.lmdb at. mdb_env_info's me_mapaddr is
 * only set for MDB_FIXEDMAP, so the map is found in /proc/self/maps by the
 * file's device and inode. */
static int lmdb_find_map(lmdb_metastore *m, uint8_t **ret_start, size_t *ret_len)
{
        _cleanup_free_ char *line = NULL;
        size_t n = 0;
        struct stat st;
        int fd, r = -ENOENT;

        if (mdb_env_get_fd(m->env, &fd) != 0 || fstat(fd, &st) < 0)
                return -EBADF;
        FILE *f = fopen("/proc/self/maps", "re");
        if (!f)
                return -errno;
        while (getline(&line, &n, f) > 0) {
                unsigned long start, end, ino;
                unsigned maj, min;
                if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &start, &end, &maj, &min, &ino) == 5 &&
                    ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev)) {
                        *ret_start = (uint8_t *)start;
                        *ret_len = end - start;
                        r = 0;
                        break;
                }
        }
        fclose(f);
        return r;
}

static void lmdb_release_memory(cas_metastore *ms)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        uint8_t *start = NULL;
        size_t len = 0;

        /* the map is read-only and shared (no MDB_WRITEMAP): dropping our page
         * table entries loses nothing, readers fault the pages back in from
         * the page cache (or the file) */
        if (lmdb_find_map(m, &start, &len) == 0)
                (void)madvise(start, len, MADV_DONTNEED);
}

static void lmdb_free(cas_metastore *ms)
{
        lmdb_metastore *m = (lmdb_metastore *)ms;
        if (m->env)
                mdb_env_close(m->env);
        free(m);
}

static const metastore_ops lmdb_ops = {
        .get_dir = lmdb_get_dir,
        .has_dir = lmdb_has_dir,
        .put_dirs = lmdb_write_dirs,
        .foreach_dir = lmdb_foreach_dir,
        .remove_dirs = lmdb_remove_dirs,
        .put_roots = lmdb_put_roots,
        .get_root = lmdb_get_root,
        .foreach_root = lmdb_foreach_root,
        .generation = lmdb_generation,
        .statcache_get = lmdb_statcache_get,
        .statcache_put = lmdb_statcache_put,
        .statcache_prune = lmdb_statcache_prune,
        .release_memory = lmdb_release_memory,
        .free = lmdb_free,
};

int cas_metastore_open_lmdb(const char *path, bool readonly, cas_metastore **ret)
{
        lmdb_metastore *m;
        MDB_txn *txn;
        int rc;

        m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        cas_metastore_init(&m->base, &lmdb_ops);
        rc = mdb_env_create(&m->env);
        if (rc)
                goto fail;
        /* The map is reserved address space, not disk. 16 GiB of metadata is
         * some hundred million directories; more address space than that
         * trips tools that track every mapping (valgrind refuses 1 TiB). */
        rc = mdb_env_set_mapsize(m->env, (size_t)1 << (sizeof(size_t) >= 8 ? 34 : 30));
        if (rc)
                goto fail;
        rc = mdb_env_set_maxdbs(m->env, 8);
        if (rc)
                goto fail;
        rc = mdb_env_set_maxreaders(m->env, 512);
        if (rc)
                goto fail;
        /* NOTLS: read transactions are short and may run on any thread. */
        rc = mdb_env_open(m->env, path, MDB_NOSUBDIR | MDB_NOTLS | MDB_NORDAHEAD | (readonly ? MDB_RDONLY : 0), 0644);
        if (rc)
                goto fail;
        /* reader slots of processes that died (killed imports, mounts) */
        int dead;
        (void)mdb_reader_check(m->env, &dead);
        rc = mdb_txn_begin(m->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
        if (rc)
                goto fail;
        unsigned create = readonly ? 0 : MDB_CREATE;
        if ((rc = mdb_dbi_open(txn, "directories", create, &m->dirs)) ||
            (rc = mdb_dbi_open(txn, "roots", create, &m->roots)) ||
            (rc = mdb_dbi_open(txn, "info", create, &m->info)) ||
            (rc = mdb_dbi_open(txn, "statcache", create, &m->statcache))) {
                mdb_txn_abort(txn);
                goto fail;
        }
        rc = mdb_txn_commit(txn);
        if (rc)
                goto fail;
        *ret = &m->base;
        return 0;
fail:
        cas_metastore_free(&m->base);
        return mdb_errno(rc);
}

/* ---- memory (tests) ---- */

typedef struct mem_record {
        char *key;
        size_t key_len;
        void *value;
        size_t len;
} mem_record;

typedef struct mem_table {
        mem_record *recs; /* sorted by key */
        size_t n;
} mem_table;

typedef struct memory_metastore {
        cas_metastore base;
        pthread_mutex_t lock; /* protects everything below */
        mem_table dirs, roots;
        uint64_t generation;
} memory_metastore;

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
        return cas_name_cmp(a, alen, b, blen);
}

static size_t table_pos(const mem_table *t, const void *key, size_t len, bool *ret_found)
{
        size_t lo = 0, hi = t->n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                int c = key_cmp(t->recs[mid].key, t->recs[mid].key_len, key, len);
                if (c == 0) {
                        *ret_found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *ret_found = false;
        return lo;
}

static int table_get(const mem_table *t, const void *key, size_t klen, void **ret, size_t *ret_len)
{
        bool found;
        size_t i = table_pos(t, key, klen, &found);
        if (!found)
                return -ENOENT;
        if (ret) {
                void *copy = malloc(t->recs[i].len ?: 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, t->recs[i].value, t->recs[i].len);
                *ret = copy;
                *ret_len = t->recs[i].len;
        }
        return 0;
}

/* value NULL removes */
static int table_put(mem_table *t, const void *key, size_t klen, const void *value, size_t len)
{
        bool found;
        size_t i = table_pos(t, key, klen, &found);
        void *copy = NULL;

        if (value) {
                copy = malloc(len ?: 1);
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, value, len);
        }
        if (found) {
                free(t->recs[i].value);
                if (copy) {
                        t->recs[i].value = copy;
                        t->recs[i].len = len;
                        return 0;
                }
                free(t->recs[i].key);
                memmove(&t->recs[i], &t->recs[i + 1], (t->n - i - 1) * sizeof(mem_record));
                t->n--;
                return 0;
        }
        if (!copy)
                return 0;
        char *k = malloc(klen + 1);
        mem_record *grown = realloc(t->recs, (t->n + 1) * sizeof(mem_record));
        if (!k || !grown) {
                free(k), free(copy);
                if (grown)
                        t->recs = grown;
                return -ENOMEM;
        }
        t->recs = grown;
        memcpy(k, key, klen);
        k[klen] = 0;
        memmove(&t->recs[i + 1], &t->recs[i], (t->n - i) * sizeof(mem_record));
        t->recs[i] = (mem_record){.key = k, .key_len = klen, .value = copy, .len = len};
        t->n++;
        return 0;
}

static void table_done(mem_table *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->recs[i].key), free(t->recs[i].value);
        free(t->recs);
}

#define MEM(ms) ((memory_metastore *)(ms))

static int mem_get_dir(cas_metastore *ms, const cas_digest *d, void **ret, size_t *ret_len)
{
        pthread_mutex_lock(&MEM(ms)->lock);
        int r = table_get(&MEM(ms)->dirs, d->bytes, CAS_DIGEST_SIZE, ret, ret_len);
        pthread_mutex_unlock(&MEM(ms)->lock);
        return r;
}

static int mem_has_dir(cas_metastore *ms, const cas_digest *d)
{
        int r = mem_get_dir(ms, d, NULL, NULL);
        return r == -ENOENT ? 0 : r < 0 ? r : 1;
}

/* Puts the directories ds (bufs given) or removes them (bufs NULL). */
static int mem_write_dirs(cas_metastore *ms, const cas_digest *ds, uint8_t *const *bufs,
                          const size_t *lens, size_t n)
{
        int r = 0;
        pthread_mutex_lock(&MEM(ms)->lock);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = bufs ? table_put(&MEM(ms)->dirs, ds[i].bytes, CAS_DIGEST_SIZE, bufs[i] ?: (void *)"", lens[i])
                         : table_put(&MEM(ms)->dirs, ds[i].bytes, CAS_DIGEST_SIZE, NULL, 0);
        pthread_mutex_unlock(&MEM(ms)->lock);
        return r;
}

static int mem_foreach_dir(cas_metastore *ms, cas_digest_cb cb, void *userdata)
{
        /* snapshot the keys, so callbacks may modify the table */
        _cleanup_free_ cas_digest *keys = NULL;
        size_t n;
        int r = 0;

        pthread_mutex_lock(&MEM(ms)->lock);
        n = MEM(ms)->dirs.n;
        keys = malloc((n ?: 1) * sizeof(cas_digest));
        if (keys)
                for (size_t i = 0; i < n; i++)
                        memcpy(keys[i].bytes, MEM(ms)->dirs.recs[i].key, CAS_DIGEST_SIZE);
        pthread_mutex_unlock(&MEM(ms)->lock);
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n && r == 0; i++)
                r = cb(&keys[i], userdata);
        return r;
}

static int mem_remove_dirs(cas_metastore *ms, const cas_digest *ds, size_t n)
{
        return mem_write_dirs(ms, ds, NULL, NULL, n);
}

static int mem_put_roots(cas_metastore *ms, const char *const *names, uint8_t *const *bufs,
                         const size_t *lens, size_t n)
{
        int r = 0;
        pthread_mutex_lock(&MEM(ms)->lock);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = table_put(&MEM(ms)->roots, names[i], strlen(names[i]), bufs[i], lens[i]);
        MEM(ms)->generation++;
        pthread_mutex_unlock(&MEM(ms)->lock);
        return r;
}

static int mem_get_root(cas_metastore *ms, const char *name, void **ret, size_t *ret_len)
{
        pthread_mutex_lock(&MEM(ms)->lock);
        int r = table_get(&MEM(ms)->roots, name, strlen(name), ret, ret_len);
        pthread_mutex_unlock(&MEM(ms)->lock);
        return r;
}

static int mem_foreach_root(cas_metastore *ms, raw_root_cb cb, void *userdata)
{
        int r = 0;
        /* roots are few in tests: copy each (key, then value) under the lock,
         * call without it */
        for (size_t i = 0; r == 0; i++) {
                uint8_t *buf = NULL;
                size_t key_len = 0, len = 0;
                pthread_mutex_lock(&MEM(ms)->lock);
                bool end = i >= MEM(ms)->roots.n;
                if (!end) {
                        const mem_record *rec = &MEM(ms)->roots.recs[i];
                        key_len = rec->key_len;
                        len = rec->len;
                        buf = malloc(key_len + len ?: 1);
                        if (buf) {
                                memcpy(buf, rec->key, key_len);
                                memcpy(buf + key_len, rec->value, len);
                        }
                }
                pthread_mutex_unlock(&MEM(ms)->lock);
                if (end)
                        break;
                if (!buf)
                        return -ENOMEM;
                r = cb(buf, key_len, buf + key_len, len, userdata);
                free(buf);
        }
        return r;
}

static int mem_generation(cas_metastore *ms, uint64_t *ret)
{
        pthread_mutex_lock(&MEM(ms)->lock);
        *ret = MEM(ms)->generation;
        pthread_mutex_unlock(&MEM(ms)->lock);
        return 0;
}

static void mem_free(cas_metastore *ms)
{
        table_done(&MEM(ms)->dirs);
        table_done(&MEM(ms)->roots);
        pthread_mutex_destroy(&MEM(ms)->lock);
        free(ms);
}

static const metastore_ops memory_ops = {
        .get_dir = mem_get_dir,
        .has_dir = mem_has_dir,
        .put_dirs = mem_write_dirs,
        .foreach_dir = mem_foreach_dir,
        .remove_dirs = mem_remove_dirs,
        .put_roots = mem_put_roots,
        .get_root = mem_get_root,
        .foreach_root = mem_foreach_root,
        .generation = mem_generation,
        .free = mem_free,
};

int cas_metastore_new_memory(cas_metastore **ret)
{
        memory_metastore *m = calloc(1, sizeof(*m));
        if (!m)
                return -ENOMEM;
        cas_metastore_init(&m->base, &memory_ops);
        pthread_mutex_init(&m->lock, NULL);
        *ret = &m->base;
        return 0;
}
