/*
 * A CGI-style WASI preview1 command module for lambent's `wasi-cgi` runtime.
 *
 * The host runs `_start` once per request: the request body arrives on stdin,
 * the request line and headers arrive as CGI environment variables
 * (REQUEST_METHOD, PATH_INFO, QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH,
 * HTTP_<HEADER>), and the response is written to stdout as CGI header lines,
 * a blank line, then the body.
 *
 * PATH_INFO routes:
 *   /teapot  -> `Status: 418 I'm a teapot` (body is the default JSON)
 *   /log     -> also writes "cgi log line" to stderr
 *   /loop    -> spins forever (tests the host's timeout)
 *   /oom     -> allocates 1 MiB blocks forever (tests the memory limit)
 *   anything else -> 200 with a JSON object describing the request:
 *     {"method":...,"path":...,"query":...,"x_test":...,"body":...}
 *   (x_test is null when the X-Test header is absent.)
 *
 * Build: clang --target=wasm32-wasi -O2 -o cgi.wasm cgi.c
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read the whole request body from stdin.  If CONTENT_LENGTH is set, read at
 * most that many bytes; otherwise read until EOF. */
static char *read_body(size_t *len_out) {
    const char *cl = getenv("CONTENT_LENGTH");
    long limit = -1;
    if (cl && *cl) {
        char *end;
        limit = strtol(cl, &end, 10);
        if (*end != '\0' || limit < 0)
            limit = -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        __builtin_trap();
    for (;;) {
        if (limit >= 0 && len >= (size_t)limit)
            break;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                __builtin_trap();
        }
        size_t want = cap - len;
        if (limit >= 0 && want > (size_t)limit - len)
            want = (size_t)limit - len;
        size_t n = fread(buf + len, 1, want, stdin);
        if (n == 0)
            break;
        len += n;
    }
    *len_out = len;
    return buf;
}

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    unsigned int min;
    unsigned int cp;
    if (c < 0x80)
        return 1;
    else if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* Write s (n bytes) as a JSON string literal.  Invalid UTF-8 becomes U+FFFD. */
static void json_string(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    putchar('"');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        switch (c) {
        case '"':  fputs("\\\"", stdout); i++; continue;
        case '\\': fputs("\\\\", stdout); i++; continue;
        case '\b': fputs("\\b", stdout); i++; continue;
        case '\f': fputs("\\f", stdout); i++; continue;
        case '\n': fputs("\\n", stdout); i++; continue;
        case '\r': fputs("\\r", stdout); i++; continue;
        case '\t': fputs("\\t", stdout); i++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7F) {
            printf("\\u%04x", c);
            i++;
            continue;
        }
        size_t len = utf8_seq_len(s + i, n - i);
        if (len == 0) {
            fputs("\\ufffd", stdout);
            i++;
        } else {
            fwrite(s + i, 1, len, stdout);
            i += len;
        }
    }
    putchar('"');
}

static void json_cstr_or_null(const char *s) {
    if (s)
        json_string(s, strlen(s));
    else
        fputs("null", stdout);
}

static void *volatile oom_blocks;

static const char *env_or_empty(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

int main(void) {
    const char *method = env_or_empty("REQUEST_METHOD");
    const char *path = env_or_empty("PATH_INFO");
    const char *query = env_or_empty("QUERY_STRING");
    const char *x_test = getenv("HTTP_X_TEST");

    if (strcmp(path, "/loop") == 0) {
        volatile unsigned long counter = 0;
        for (;;)
            counter++;
    }
    if (strcmp(path, "/oom") == 0) {
        for (;;) {
            char *block = malloc(1 << 20);
            if (!block)
                __builtin_trap();
            memset(block, 1, 1 << 20);
            /* Chain the blocks from a volatile root so that the compiler
             * cannot drop the allocations as unused. */
            *(void **)block = oom_blocks;
            oom_blocks = block;
        }
    }
    if (strcmp(path, "/log") == 0) {
        fputs("cgi log line\n", stderr);
        fflush(stderr);
    }

    size_t body_len;
    char *body = read_body(&body_len);

    if (strcmp(path, "/teapot") == 0)
        fputs("Status: 418 I'm a teapot\n", stdout);
    else
        fputs("Status: 200 OK\n", stdout);
    fputs("Content-Type: application/json\n\n", stdout);

    fputs("{\"method\":", stdout);
    json_string(method, strlen(method));
    fputs(",\"path\":", stdout);
    json_string(path, strlen(path));
    fputs(",\"query\":", stdout);
    json_string(query, strlen(query));
    fputs(",\"x_test\":", stdout);
    json_cstr_or_null(x_test);
    fputs(",\"body\":", stdout);
    json_string(body, body_len);
    fputs("}\n", stdout);
    fflush(stdout);
    free(body);
    return 0;
}
