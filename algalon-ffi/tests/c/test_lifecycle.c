/*
 * Handle lifetimes and error paths of the C API, against the fake NVML with
 * the constant scenario: every pointer argument NULL, the size probe of
 * every string function with heap buffers of exactly the sizes probed (so
 * AddressSanitizer and valgrind see any byte written past them), freeing
 * sampler / snapshot / jobs in every order, jobs ended twice or outliving
 * their sampler, and NVML libraries that cannot be used.
 * Run by algalon-ffi/tests/c_programs.rs, plain, under valgrind and under
 * AddressSanitizer + UBSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static algalon_sampler *new_sampler(uint64_t interval_ms) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_xid_events(opts, false));
    REQUIRE_OK(algalon_options_set_interval_ms(opts, interval_ms));
    algalon_sampler *sampler = NULL;
    REQUIRE_OK(algalon_sampler_new(opts, &sampler));
    algalon_options_free(opts);
    return sampler;
}

/* The last error names the function and the NULL argument. */
static void expect_null_error(const char *function, const char *arg) {
    char msg[256];
    size_t n = 0;
    if (algalon_last_error(msg, sizeof msg, &n) != ALGALON_RESULT_OK) {
        EXPECT(!"last error readable");
        return;
    }
    char want[256];
    snprintf(want, sizeof want, "%s: argument `%s` is NULL", function, arg);
    if (strcmp(msg, want) != 0) {
        fprintf(stderr, "last error %s\n     want %s\n", msg, want);
        failures++;
    }
}

#define EXPECT_NULL(call, function, arg)                                                           \
    do {                                                                                           \
        EXPECT_RESULT(call, ALGALON_RESULT_NULL_PARAMETER);                                        \
        expect_null_error(function, arg);                                                          \
    } while (0)

/* Every function, every required pointer NULL in turn; outs stay untouched. */
static void test_every_null_argument(algalon_sampler *sampler, algalon_snapshot *snap) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "nulls", &job));
    char buf[64];
    size_t n = 12345;
    double d = -7;
    uint64_t u = 77;
    algalon_gpu_sample gpu;
    algalon_job_report report;
    algalon_job_gpu_report job_gpu;

    /* These two leave the thread's last error as it was, even when they fail. */
    EXPECT_NULL(algalon_snapshot_gpu_count(NULL, &n), "algalon_snapshot_gpu_count", "snapshot");
    EXPECT_RESULT(algalon_last_error(buf, sizeof buf, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_last_error(NULL, 8, &n), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_result_message(0, buf, sizeof buf, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_result_message(0, NULL, 8, &n), ALGALON_RESULT_NULL_PARAMETER);
    expect_null_error("algalon_snapshot_gpu_count", "snapshot");

    EXPECT_NULL(algalon_options_set_nvml_lib(NULL, "x"), "algalon_options_set_nvml_lib", "opts");
    EXPECT_NULL(algalon_options_set_nvml_lib(opts, NULL), "algalon_options_set_nvml_lib", "path");
    EXPECT_NULL(algalon_options_set_devices(NULL, "0"), "algalon_options_set_devices", "opts");
    EXPECT_NULL(algalon_options_set_devices(opts, NULL), "algalon_options_set_devices", "devices");
    EXPECT_NULL(algalon_options_set_collectors_file(NULL, "x"),
                "algalon_options_set_collectors_file", "opts");
    EXPECT_NULL(algalon_options_set_collectors_file(opts, NULL),
                "algalon_options_set_collectors_file", "path");
    EXPECT_NULL(algalon_options_set_interval_ms(NULL, 5), "algalon_options_set_interval_ms",
                "opts");
    EXPECT_NULL(algalon_options_set_processes(NULL, true), "algalon_options_set_processes", "opts");
    EXPECT_NULL(algalon_options_set_xid_events(NULL, true), "algalon_options_set_xid_events",
                "opts");
    EXPECT_NULL(algalon_options_set_hostname(NULL, "h"), "algalon_options_set_hostname", "opts");
    EXPECT_NULL(algalon_options_set_hostname(opts, NULL), "algalon_options_set_hostname",
                "hostname");

    EXPECT_NULL(algalon_sampler_new(opts, NULL), "algalon_sampler_new", "out");
    EXPECT_NULL(algalon_sampler_latest(NULL, &snap), "algalon_sampler_latest", "sampler");
    EXPECT_NULL(algalon_sampler_latest(sampler, NULL), "algalon_sampler_latest", "out");
    EXPECT_NULL(algalon_sampler_sample(NULL, &snap), "algalon_sampler_sample", "sampler");

    EXPECT_NULL(algalon_snapshot_gpu_count(snap, NULL), "algalon_snapshot_gpu_count", "out");
    EXPECT_NULL(algalon_snapshot_gpu(NULL, 0, &gpu), "algalon_snapshot_gpu", "snapshot");
    EXPECT_NULL(algalon_snapshot_gpu_field(NULL, 0, "DCGM_FI_DEV_GPU_UTIL", &d),
                "algalon_snapshot_gpu_field", "snapshot");
    EXPECT_NULL(algalon_snapshot_gpu_field(snap, 0, NULL, &d), "algalon_snapshot_gpu_field",
                "field");
    EXPECT_NULL(algalon_snapshot_gpu_field(snap, 0, "DCGM_FI_DEV_GPU_UTIL", NULL),
                "algalon_snapshot_gpu_field", "out");
    EXPECT(d == -7);
    EXPECT_NULL(algalon_snapshot_gpu_down_reason(NULL, 0, buf, sizeof buf, &n),
                "algalon_snapshot_gpu_down_reason", "snapshot");
    EXPECT_NULL(algalon_snapshot_encode(NULL, buf, sizeof buf, &n), "algalon_snapshot_encode",
                "snapshot");
    EXPECT_NULL(algalon_snapshot_encode(snap, buf, sizeof buf, NULL), "algalon_snapshot_encode",
                "out_n");
    EXPECT_NULL(algalon_snapshot_seq(NULL, &u), "algalon_snapshot_seq", "snapshot");
    EXPECT_NULL(algalon_snapshot_seq(snap, NULL), "algalon_snapshot_seq", "out");
    EXPECT_NULL(algalon_snapshot_taken_at(NULL, &d), "algalon_snapshot_taken_at", "snapshot");
    EXPECT_NULL(algalon_snapshot_taken_at(snap, NULL), "algalon_snapshot_taken_at", "out");
    EXPECT_NULL(algalon_snapshot_driver_version(NULL, buf, sizeof buf, &n),
                "algalon_snapshot_driver_version", "snapshot");
    EXPECT_NULL(algalon_snapshot_driver_version(snap, NULL, 8, &n),
                "algalon_snapshot_driver_version", "buf");
    EXPECT(u == 77 && d == -7 && n == 12345);

    algalon_job *untouched = (algalon_job *)(uintptr_t)1;
    EXPECT_NULL(algalon_job_begin(NULL, "x", &untouched), "algalon_job_begin", "sampler");
    EXPECT_NULL(algalon_job_begin(sampler, "x", NULL), "algalon_job_begin", "out");
    EXPECT(untouched == (algalon_job *)(uintptr_t)1);
    EXPECT_NULL(algalon_job_add_count(NULL, "tokens", 1), "algalon_job_add_count", "job");
    EXPECT_NULL(algalon_job_add_count(job, NULL, 1), "algalon_job_add_count", "what");
    EXPECT_NULL(algalon_job_gpu(NULL, 0, &job_gpu), "algalon_job_gpu", "job");
    EXPECT_NULL(algalon_job_gpu(job, 0, NULL), "algalon_job_gpu", "out");
    EXPECT_NULL(algalon_job_table(NULL, buf, sizeof buf, &n), "algalon_job_table", "job");
    EXPECT_NULL(algalon_job_table(job, buf, sizeof buf, NULL), "algalon_job_table", "out_n");
    EXPECT_NULL(algalon_job_end(job, NULL), "algalon_job_end", "out");
    /* A NULL out did not end the job: it still ends once. */
    EXPECT_RESULT(algalon_job_end(job, &report), ALGALON_RESULT_OK);

    /* Not UTF-8, empty: INVALID_ARGUMENT, nothing created. */
    algalon_job *bad = NULL;
    EXPECT_RESULT(algalon_job_begin(sampler, "\xff\xfe", &bad), ALGALON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(algalon_job_begin(sampler, "  ", &bad), ALGALON_RESULT_INVALID_ARGUMENT);
    EXPECT(bad == NULL);
    EXPECT_RESULT(algalon_options_set_hostname(opts, "\xc3"), ALGALON_RESULT_INVALID_ARGUMENT);

    algalon_job_free(job);
    algalon_options_free(opts);
}

typedef algalon_result (*string_fn)(const void *ctx, char *buf, size_t len, size_t *out_n);

static algalon_result call_encode(const void *ctx, char *buf, size_t len, size_t *out_n) {
    return algalon_snapshot_encode(ctx, buf, len, out_n);
}
static algalon_result call_driver(const void *ctx, char *buf, size_t len, size_t *out_n) {
    return algalon_snapshot_driver_version(ctx, buf, len, out_n);
}
static algalon_result call_table(const void *ctx, char *buf, size_t len, size_t *out_n) {
    return algalon_job_table(ctx, buf, len, out_n);
}
static algalon_result call_message(const void *ctx, char *buf, size_t len, size_t *out_n) {
    (void)ctx;
    return algalon_result_message(ALGALON_RESULT_NVML_NOT_FOUND, buf, len, out_n);
}
static algalon_result call_last_error(const void *ctx, char *buf, size_t len, size_t *out_n) {
    (void)ctx;
    return algalon_last_error(buf, len, out_n);
}

/*
 * The string protocol of one function: the probe gives the size with the
 * NUL; buffers of 1 and of size-1 bytes (heap, exactly that size) get
 * INSUFFICIENT_SIZE, the same size, and are left as they were; a buffer of
 * exactly the size gets the string and its NUL.
 */
static void probe_string(const char *what, string_fn fn, const void *ctx) {
    size_t need = 0;
    algalon_result r = fn(ctx, NULL, 0, &need);
    if (r != ALGALON_RESULT_INSUFFICIENT_SIZE || need < 2) {
        fprintf(stderr, "FAIL %s: probe gave %u, size %zu\n", what, (unsigned)r, need);
        failures++;
        return;
    }
    size_t lens[] = {1, need / 2, need - 1};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t len = lens[k];
        char *small = malloc(len);
        memset(small, '#', len);
        size_t n = 0;
        r = fn(ctx, small, len, &n);
        if (r != ALGALON_RESULT_INSUFFICIENT_SIZE || n != need) {
            fprintf(stderr, "FAIL %s: len %zu gave %u, size %zu (want %zu)\n", what, len,
                    (unsigned)r, n, need);
            failures++;
        }
        for (size_t i = 0; i < len; i++) {
            if (small[i] != '#') {
                fprintf(stderr, "FAIL %s: byte %zu of a too-small buffer was written\n", what, i);
                failures++;
                break;
            }
        }
        free(small);
    }
    char *exact = malloc(need);
    size_t n = 0;
    r = fn(ctx, exact, need, &n);
    if (r != ALGALON_RESULT_OK || n + 1 != need || exact[n] != '\0' || strlen(exact) != n) {
        fprintf(stderr, "FAIL %s: exact buffer of %zu gave %u, length %zu\n", what, need,
                (unsigned)r, n);
        failures++;
    }
    free(exact);
}

static void test_every_string_probe(algalon_sampler *sampler, algalon_snapshot *snap) {
    probe_string("algalon_snapshot_encode", call_encode, snap);
    probe_string("algalon_snapshot_driver_version", call_driver, snap);
    probe_string("algalon_result_message", call_message, NULL);
    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "probe", &job));
    REQUIRE_OK(algalon_job_add_count(job, "tokens", 1000));
    probe_string("algalon_job_table (running)", call_table, job);
    algalon_job_report report;
    REQUIRE_OK(algalon_job_end(job, &report));
    probe_string("algalon_job_table (ended)", call_table, job);
    /* The probes of last_error fail themselves: the message must survive them. */
    EXPECT_RESULT(algalon_snapshot_gpu_count(NULL, NULL), ALGALON_RESULT_NULL_PARAMETER);
    probe_string("algalon_last_error", call_last_error, NULL);
    expect_null_error("algalon_snapshot_gpu_count", "snapshot");
    algalon_job_free(job);
}

/* Creates a sampler, a snapshot, an ended and a running job, and frees them in `order`. */
static void free_in_order(const int order[4], uint64_t interval_ms) {
    algalon_sampler *sampler = new_sampler(interval_ms);
    algalon_snapshot *snap = NULL;
    REQUIRE_OK(algalon_sampler_sample(sampler, &snap));
    algalon_job *ended = NULL, *running = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "ended", &ended));
    REQUIRE_OK(algalon_job_begin(sampler, "running", &running));
    algalon_job_report report;
    REQUIRE_OK(algalon_job_end(ended, &report));
    bool sampler_freed = false;
    for (int k = 0; k < 4; k++) {
        switch (order[k]) {
        case 0:
            algalon_sampler_free(sampler);
            sampler_freed = true;
            break;
        case 1: {
            /* The snapshot does not borrow the sampler. */
            size_t count = 0;
            EXPECT_RESULT(algalon_snapshot_gpu_count(snap, &count), ALGALON_RESULT_OK);
            EXPECT(count == 2);
            algalon_snapshot_free(snap);
            break;
        }
        case 2: {
            /* An ended job keeps its report. */
            algalon_job_gpu_report g;
            EXPECT_RESULT(algalon_job_gpu(ended, 1, &g), ALGALON_RESULT_OK);
            EXPECT(g.has_power && g.power_mean_w == 27.25);
            algalon_job_free(ended);
            break;
        }
        case 3:
            /* A running job keeps the NVML session: it can end after its sampler is freed. */
            if (sampler_freed) {
                algalon_job_report late;
                EXPECT_RESULT(algalon_job_end(running, &late), ALGALON_RESULT_OK);
                EXPECT(late.gpu_count == 2 && late.has_energy);
            }
            algalon_job_free(running);
            break;
        }
    }
}

static void test_free_in_every_order(void) {
    int order[4] = {0, 1, 2, 3};
    int c[4] = {0};
    int runs = 0;
    /* Heap's algorithm: all 24 orders, each with and without a background thread. */
    for (int bg = 0; bg < 2; bg++) free_in_order(order, bg ? 2 : 0);
    runs++;
    for (int i = 1; i < 4;) {
        if (c[i] < i) {
            int j = i % 2 ? c[i] : 0;
            int t = order[j];
            order[j] = order[i];
            order[i] = t;
            for (int bg = 0; bg < 2; bg++) free_in_order(order, bg ? 2 : 0);
            runs++;
            c[i]++;
            i = 1;
        } else {
            c[i] = 0;
            i++;
        }
    }
    EXPECT(runs == 24);
}

static void test_job_twice(algalon_sampler *sampler) {
    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "twice", &job));
    EXPECT_RESULT(algalon_job_add_count(job, "samples", 10), ALGALON_RESULT_OK);
    EXPECT_RESULT(algalon_job_add_count(job, "", 1), ALGALON_RESULT_INVALID_ARGUMENT);
    EXPECT_RESULT(algalon_job_add_count(job, "samples", 1.0 / 0.0), ALGALON_RESULT_INVALID_ARGUMENT);
    /* The same name twice: two independent windows that nest. */
    algalon_job *again = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "twice", &again));
    sleep_ms(50);
    algalon_job_report first, second;
    REQUIRE_OK(algalon_job_end(job, &first));
    REQUIRE_OK(algalon_job_end(again, &second));
    EXPECT(first.started_at <= second.started_at && second.ended_at >= first.ended_at);
    /* A second end changes nothing. */
    algalon_job_report untouched;
    memset(&untouched, 0xab, sizeof untouched);
    algalon_job_report copy = untouched;
    EXPECT_RESULT(algalon_job_end(job, &untouched), ALGALON_RESULT_ALREADY_ENDED);
    EXPECT(memcmp(&untouched, &copy, sizeof copy) == 0);
    EXPECT_RESULT(algalon_job_end(job, &untouched), ALGALON_RESULT_ALREADY_ENDED);
    EXPECT_RESULT(algalon_job_add_count(job, "samples", 1), ALGALON_RESULT_ALREADY_ENDED);
    /* The report is final: the same after the failed calls. */
    algalon_job_gpu_report g0, g0_again;
    REQUIRE_OK(algalon_job_gpu(job, 0, &g0));
    algalon_snapshot *later = NULL;
    EXPECT_RESULT(algalon_sampler_sample(sampler, &later), ALGALON_RESULT_OK);
    algalon_snapshot_free(later);
    REQUIRE_OK(algalon_job_gpu(job, 0, &g0_again));
    EXPECT(g0.samples == g0_again.samples && g0.energy_j == g0_again.energy_j);
    EXPECT_RESULT(algalon_job_gpu(job, 2, &g0), ALGALON_RESULT_OUT_OF_RANGE);
    algalon_job_free(job);
    algalon_job_free(again);
}

static void test_unusable_nvml(void) {
    /* A path that does not exist, a file that is not a library, a library without NVML. */
    const char *paths[] = {"/nonexistent/libnvidia-ml.so.1", "/dev/null", "libm.so.6", ""};
    for (size_t k = 0; k < sizeof paths / sizeof paths[0]; k++) {
        for (int round = 0; round < 3; round++) {
            algalon_options *opts = NULL;
            REQUIRE_OK(algalon_options_new(&opts));
            EXPECT_RESULT(algalon_options_set_xid_events(opts, false), ALGALON_RESULT_OK);
            algalon_result set = algalon_options_set_nvml_lib(opts, paths[k]);
            algalon_sampler *sampler = NULL;
            algalon_result r = set == ALGALON_RESULT_OK ? algalon_sampler_new(opts, &sampler) : set;
            char msg[1024] = "";
            size_t n = 0;
            EXPECT_RESULT(algalon_last_error(msg, sizeof msg, &n), ALGALON_RESULT_OK);
            if (!(r == ALGALON_RESULT_NVML_NOT_FOUND || r == ALGALON_RESULT_NVML_INIT ||
                  (paths[k][0] == '\0' && r == ALGALON_RESULT_INVALID_ARGUMENT)) ||
                sampler != NULL || strchr(msg, '\n') != NULL || n == 0) {
                fprintf(stderr, "FAIL nvml lib \"%s\": result %u, sampler %p, error: %s\n",
                        paths[k], (unsigned)r, (void *)sampler, msg);
                failures++;
            }
            if (round == 0) printf("nvml lib \"%s\": %u: %s\n", paths[k], (unsigned)r, msg);
            algalon_options_free(opts);
        }
    }
}

int main(void) {
    test_unusable_nvml();
    algalon_sampler *sampler = new_sampler(0);
    algalon_snapshot *snap = NULL;
    REQUIRE_OK(algalon_sampler_sample(sampler, &snap));
    test_every_null_argument(sampler, snap);
    test_every_string_probe(sampler, snap);
    test_job_twice(sampler);
    algalon_snapshot_free(snap);
    algalon_sampler_free(sampler);
    test_free_in_every_order();
    return finish("test_lifecycle");
}
