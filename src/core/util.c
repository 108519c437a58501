/* util.c: errors, allocation, files and small helpers. */
#include "core/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ERROR_CAP 1024
static _Thread_local char error_msg[ERROR_CAP];

const char *rosa_last_error(void) { return error_msg; }

void rosa_clear_error(void) { error_msg[0] = 0; }

int rosa_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_msg, ERROR_CAP, fmt, ap);
    va_end(ap);
    return -1;
}

void rosa_error_prefix(const char *fmt, ...) {
    char prefix[512], old[ERROR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_msg, ERROR_CAP);
    size_t n = strlen(prefix);
    if (n > ERROR_CAP - 3) n = ERROR_CAP - 3;
    memcpy(error_msg, prefix, n);
    memcpy(error_msg + n, ": ", 2);
    size_t rest = strnlen(old, ERROR_CAP - 1);
    if (rest > ERROR_CAP - 1 - (n + 2)) rest = ERROR_CAP - 1 - (n + 2);
    memcpy(error_msg + n + 2, old, rest);
    error_msg[n + 2 + rest] = 0;
}

int rosa_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

void *rosa_malloc(size_t n, const char *what) {
    void *p = malloc(n ? n : 1);
    if (!p) rosa_fail("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *rosa_calloc(size_t count, size_t size, const char *what) {
    size_t n;
    if (!rosa_mul_size(count, size, &n)) {
        rosa_fail("size overflow allocating %zu x %zu bytes for %s", count, size, what);
        return NULL;
    }
    void *p = calloc(n ? count : 1, n ? size : 1);
    if (!p) rosa_fail("out of memory allocating %zu bytes for %s", n, what);
    return p;
}

void *rosa_realloc(void *p, size_t n, const char *what) {
    void *q = realloc(p, n ? n : 1);
    if (!q) rosa_fail("out of memory allocating %zu bytes for %s", n, what);
    return q;
}

char *rosa_strndup(const char *s, size_t n) {
    char *p = rosa_malloc(n + 1, "string");
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *rosa_strdup(const char *s) { return rosa_strndup(s, strlen(s)); }

char *rosa_read_file(const char *path, size_t *len) {
    /* O_NONBLOCK: a FIFO (or a device) is refused below instead of waiting
     * for a writer that may never come; a regular file reads as usual. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rosa_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rosa_fail("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        rosa_fail("%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    rosa_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (rosa_buf_append(&b, chunk, n) < 0) {
            fclose(f);
            rosa_buf_free(&b);
            return NULL;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        rosa_buf_free(&b);
        rosa_fail("%s: read error", path);
        return NULL;
    }
    if (rosa_buf_putc(&b, 0) < 0) {
        rosa_buf_free(&b);
        return NULL;
    }
    if (len) *len = b.len - 1;
    return b.data;
}

int rosa_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int rosa_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *rosa_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = rosa_malloc(a + b + 2, "path");
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int rosa_path_inside(const char *path, const char *root) {
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return path[0] == '/';
    return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == 0);
}

char *rosa_real_path(const char *path) {
    rosa_buf abs = {0};
    if (path[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (!cwd) {
            rosa_fail("%s: cannot resolve: the current directory: %s", path, strerror(errno));
            return NULL;
        }
        int rc = rosa_buf_printf(&abs, "%s/", cwd);
        free(cwd);
        if (rc < 0) return NULL;
    }
    if (rosa_buf_printf(&abs, "%s", path) < 0) {
        rosa_buf_free(&abs);
        return NULL;
    }
    /* Cut components off the end until what is left resolves ("/" always
     * does); the cut tail does not exist yet and is appended as written. */
    char *head = abs.data, *tail = NULL, *real = NULL;
    for (;;) {
        real = realpath(*head ? head : "/", NULL);
        if (real || !*head) break;
        char *slash = strrchr(head, '/');
        if (tail) tail[-1] = '/'; /* rejoin the previous cut */
        *slash = 0;
        tail = slash + 1;
    }
    rosa_buf out = {0};
    if (!real || rosa_buf_printf(&out, "%s", real) < 0) {
        if (!real) rosa_fail("%s: cannot resolve: %s", path, strerror(errno));
        free(real);
        rosa_buf_free(&abs);
        rosa_buf_free(&out);
        return NULL;
    }
    free(real);
    for (char *c = tail, *next; c; c = next) {
        char *slash = strchr(c, '/');
        next = slash ? slash + 1 : NULL;
        size_t n = slash ? (size_t)(slash - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.')) continue;
        if (n == 2 && c[0] == '.' && c[1] == '.') { /* lexically: the directory does not exist */
            char *up = strrchr(out.data, '/');
            out.len = up > out.data ? (size_t)(up - out.data) : 1;
            out.data[out.len] = 0;
            continue;
        }
        if ((out.len > 1 && rosa_buf_putc(&out, '/') < 0) || rosa_buf_append(&out, c, n) < 0) {
            rosa_buf_free(&abs);
            rosa_buf_free(&out);
            return NULL;
        }
    }
    rosa_buf_free(&abs);
    return out.data;
}

int rosa_path_overlaps(const char *a, const char *b) {
    char *ra = rosa_real_path(a), *rb = ra ? rosa_real_path(b) : NULL;
    int r = ra && rb ? (strcmp(ra, rb) == 0 ? 1 : rosa_path_inside(ra, rb) ? 2 : rosa_path_inside(rb, ra) ? 3 : 0) : -1;
    free(ra);
    free(rb);
    return r;
}

int rosa_check_apart(const char *out_opt, const char *out, const char *in_opt, const char *in) {
    if (!out || !in) return 0;
    int r = rosa_path_overlaps(out, in);
    /* An input that cannot be resolved is reported by its own open. */
    if (r <= 0) return 0;
    static const char *const how[] = {"", "is the same path as", "lies inside", "contains"};
    return rosa_fail("%s %s %s %s %s: an output must not overlap an input (writing or clearing it would overwrite or "
                     "delete the input); choose another %s",
                     out_opt, out, how[r], in_opt, in, out_opt);
}

FILE *rosa_atomic_begin(const char *path, char **tmp_path) {
    char *tmp = rosa_malloc(strlen(path) + 5, "path");
    if (!tmp) return NULL;
    sprintf(tmp, "%s.tmp", path);
    /* A stale temporary is removed, never written through: with O_EXCL the
     * open creates a new file and follows no link (a link left at NAME.tmp
     * would otherwise truncate its target, wherever it is).  Whatever the
     * unlink could not remove makes the open fail with its reason. */
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        rosa_fail("%s: cannot create: %s", tmp, strerror(errno));
        if (fd >= 0) close(fd);
        free(tmp);
        return NULL;
    }
    *tmp_path = tmp;
    return f;
}

int rosa_atomic_end(FILE *f, char *tmp, const char *path, int ok) {
    int rc = 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int err = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        rc = rosa_fail("%s: write failed: %s", tmp, strerror(err));
    } else if (rename(tmp, path) != 0) {
        rc = rosa_fail("%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    } else {
        /* Make the rename itself durable. */
        char *dir = rosa_strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            int fd = open(slash ? (*dir ? dir : "/") : ".", O_RDONLY | O_DIRECTORY);
            if (fd >= 0) {
                fsync(fd);
                close(fd);
            }
            free(dir);
        }
    }
    if (rc < 0) unlink(tmp);
    free(tmp);
    return rc;
}

int rosa_write_file_atomic(const char *path, const void *data, size_t len) {
    char *tmp;
    FILE *f = rosa_atomic_begin(path, &tmp);
    if (!f) return -1;
    return rosa_atomic_end(f, tmp, path, fwrite(data, 1, len, f) == len);
}

int rosa_mmap_open(rosa_mmap *m, const char *path) {
    m->data = NULL;
    m->size = 0;
    /* O_NONBLOCK: a FIFO is refused below instead of waiting for a writer. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return rosa_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return rosa_fail("%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rosa_fail("%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return rosa_fail("%s: cannot map: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    return 0;
}

void rosa_mmap_close(rosa_mmap *m) {
    if (m->data) munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int rosa_utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) return 2;
    if ((c & 0xF0) == 0xE0) return 3;
    if ((c & 0xF8) == 0xF0) return 4;
    return 1;
}

size_t rosa_utf8_valid_prefix(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + (size_t)len > n) return i;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (size_t)len;
    }
    return n;
}

int rosa_buf_append(rosa_buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *d = rosa_realloc(b->data, cap, "buffer");
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int rosa_buf_putc(rosa_buf *b, char c) { return rosa_buf_append(b, &c, 1); }

int rosa_buf_printf(rosa_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return rosa_fail("buffer: bad format");
    if ((size_t)n < sizeof small) return rosa_buf_append(b, small, (size_t)n);
    char *big = rosa_malloc((size_t)n + 1, "buffer");
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = rosa_buf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void rosa_buf_free(rosa_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

float rosa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3FF;
            bits = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float rosa_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t rosa_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, absx = x & 0x7FFFFFFFu;
    if (absx > 0x7F800000u) return (uint16_t)(sign | 0x7E00u); /* NaN */
    if (absx >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to infinity */
    if (absx < 0x38800000u) { /* subnormal or zero in half precision */
        if (absx < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (absx & 0x7FFFFFu) | 0x800000u;
        int shift = 113 - (int)(absx >> 23) + 13;
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((absx - 0x38000000u) >> 13);
    uint32_t rem = absx & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

double rosa_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void rosa_rng_seed(rosa_rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t rosa_rng_next(rosa_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rosa_rng_below(rosa_rng *r, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound; /* reject the short last bucket */
    for (;;) {
        uint64_t x = rosa_rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

float rosa_rng_uniform(rosa_rng *r) { return (float)(rosa_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

int rosa_parse_int_list(const char *s, int32_t **ids, int *n) {
    int cap = 16, k = 0;
    int32_t *a = rosa_malloc(sizeof(int32_t) * (size_t)cap, "integer list");
    if (!a) return -1;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > 0x7fffffffL) {
            free(a);
            return rosa_fail("\"%s\" is not a list of non-negative integers", s);
        }
        if (k == cap) {
            cap *= 2;
            int32_t *b = rosa_realloc(a, sizeof(int32_t) * (size_t)cap, "integer list");
            if (!b) {
                free(a);
                return -1;
            }
            a = b;
        }
        a[k++] = (int32_t)v;
        p = end;
    }
    *ids = a;
    *n = k;
    return 0;
}
