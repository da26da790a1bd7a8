/*
 * Races the C API promises to survive, against the fake NVML with the
 * constant scenario: several threads ending one job at once (exactly one
 * wins), counting into one job at once (no count lost), creating and freeing
 * their own samplers at once (NVML opened and shut down concurrently), and
 * reading and encoding snapshots and jobs while another thread frees the
 * sampler they came from. Run by algalon-ffi/tests/c_programs.rs, plain,
 * under valgrind and under AddressSanitizer + UBSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define THREADS 8

static algalon_sampler *shared_sampler;
static algalon_job *shared_job;
static pthread_barrier_t start_line;
static algalon_result end_results[THREADS];
static int thread_failures[THREADS];

static void *end_job(void *arg) {
    int t = (int)(intptr_t)arg;
    algalon_job_report r;
    pthread_barrier_wait(&start_line);
    end_results[t] = algalon_job_end(shared_job, &r);
    if (end_results[t] == ALGALON_RESULT_OK && r.gpu_count != 2) thread_failures[t]++;
    return NULL;
}

static void *count_into_job(void *arg) {
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&start_line);
    for (int k = 0; k < 500; k++) {
        if (algalon_job_add_count(shared_job, "tokens", 2) != ALGALON_RESULT_OK)
            thread_failures[t]++;
        if (k % 100 == 0) {
            char table[4096];
            size_t n = 0;
            if (algalon_job_table(shared_job, table, sizeof table, &n) != ALGALON_RESULT_OK)
                thread_failures[t]++;
        }
    }
    return NULL;
}

static void *own_sampler(void *arg) {
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&start_line);
    for (int k = 0; k < 5; k++) {
        algalon_options *opts = NULL;
        algalon_sampler *s = NULL;
        algalon_snapshot *snap = NULL;
        algalon_job *job = NULL;
        algalon_job_report r;
        if (algalon_options_new(&opts) != ALGALON_RESULT_OK ||
            algalon_options_set_xid_events(opts, false) != ALGALON_RESULT_OK ||
            algalon_options_set_interval_ms(opts, (uint64_t)(k % 2 ? 1 : 0)) != ALGALON_RESULT_OK ||
            algalon_sampler_new(opts, &s) != ALGALON_RESULT_OK ||
            algalon_job_begin(s, "own", &job) != ALGALON_RESULT_OK ||
            algalon_sampler_sample(s, &snap) != ALGALON_RESULT_OK ||
            algalon_job_end(job, &r) != ALGALON_RESULT_OK || r.gpu_count != 2) {
            char msg[512] = "";
            size_t n = 0;
            algalon_last_error(msg, sizeof msg, &n);
            fprintf(stderr, "thread %d round %d: %s\n", t, k, msg);
            thread_failures[t]++;
        }
        algalon_options_free(opts);
        algalon_sampler_free(s);
        algalon_snapshot_free(snap);
        algalon_job_free(job);
    }
    return NULL;
}

static void run_threads(void *(*fn)(void *)) {
    pthread_t threads[THREADS];
    memset(thread_failures, 0, sizeof thread_failures);
    EXPECT(pthread_barrier_init(&start_line, NULL, THREADS) == 0);
    for (int t = 0; t < THREADS; t++)
        EXPECT(pthread_create(&threads[t], NULL, fn, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < THREADS; t++) {
        EXPECT(pthread_join(threads[t], NULL) == 0);
        EXPECT(thread_failures[t] == 0);
    }
    pthread_barrier_destroy(&start_line);
}

static algalon_sampler *new_sampler(uint64_t interval_ms) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_xid_events(opts, false));
    REQUIRE_OK(algalon_options_set_interval_ms(opts, interval_ms));
    algalon_sampler *s = NULL;
    REQUIRE_OK(algalon_sampler_new(opts, &s));
    algalon_options_free(opts);
    return s;
}

static void test_one_end_wins(void) {
    for (int round = 0; round < 10; round++) {
        REQUIRE_OK(algalon_job_begin(shared_sampler, "raced", &shared_job));
        run_threads(end_job);
        int ok = 0, already = 0;
        for (int t = 0; t < THREADS; t++) {
            ok += end_results[t] == ALGALON_RESULT_OK;
            already += end_results[t] == ALGALON_RESULT_ALREADY_ENDED;
        }
        EXPECT(ok == 1 && already == THREADS - 1);
        algalon_job_free(shared_job);
    }
}

static void test_counts_add_up(void) {
    REQUIRE_OK(algalon_job_begin(shared_sampler, "counted", &shared_job));
    run_threads(count_into_job);
    algalon_job_report r;
    REQUIRE_OK(algalon_job_end(shared_job, &r));
    char table[4096];
    size_t n = 0;
    REQUIRE_OK(algalon_job_table(shared_job, table, sizeof table, &n));
    /* 8 threads x 500 x 2 tokens. */
    if (strstr(table, "8000 tokens") == NULL) {
        fprintf(stderr, "FAIL: the table does not count 8000 tokens:\n%s", table);
        failures++;
    }
    algalon_job_free(shared_job);
}

/* Snapshots and a running job outlive their sampler, freed while in use elsewhere. */
static algalon_snapshot *kept_snapshot;
static void *read_after_free(void *arg) {
    int t = (int)(intptr_t)arg;
    pthread_barrier_wait(&start_line);
    for (int k = 0; k < 200; k++) {
        algalon_gpu_sample g;
        char buf[256];
        size_t n = 0;
        if (algalon_snapshot_gpu(kept_snapshot, 0, &g) != ALGALON_RESULT_OK ||
            g.gpu_util_percent != 85.0)
            thread_failures[t]++;
        if (algalon_job_table(shared_job, buf, sizeof buf, &n) == ALGALON_RESULT_NULL_PARAMETER)
            thread_failures[t]++;
        /* One snapshot encoded by every thread at once: the same text for all. */
        size_t need = 0;
        if (algalon_snapshot_encode(kept_snapshot, NULL, 0, &need) !=
            ALGALON_RESULT_INSUFFICIENT_SIZE) {
            thread_failures[t]++;
            continue;
        }
        char *text = malloc(need);
        if (algalon_snapshot_encode(kept_snapshot, text, need, &n) != ALGALON_RESULT_OK ||
            n + 1 != need || strstr(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"") == NULL)
            thread_failures[t]++;
        free(text);
    }
    return NULL;
}

static void test_handles_outlive_the_sampler(void) {
    algalon_sampler *s = new_sampler(1);
    REQUIRE_OK(algalon_sampler_latest(s, &kept_snapshot));
    REQUIRE_OK(algalon_job_begin(s, "outlives", &shared_job));
    pthread_t threads[THREADS];
    memset(thread_failures, 0, sizeof thread_failures);
    EXPECT(pthread_barrier_init(&start_line, NULL, THREADS + 1) == 0);
    for (int t = 0; t < THREADS; t++)
        EXPECT(pthread_create(&threads[t], NULL, read_after_free, (void *)(intptr_t)t) == 0);
    pthread_barrier_wait(&start_line);
    algalon_sampler_free(s); /* while the readers run */
    for (int t = 0; t < THREADS; t++) {
        EXPECT(pthread_join(threads[t], NULL) == 0);
        EXPECT(thread_failures[t] == 0);
    }
    pthread_barrier_destroy(&start_line);
    algalon_job_report r;
    EXPECT_RESULT(algalon_job_end(shared_job, &r), ALGALON_RESULT_OK);
    EXPECT(r.gpu_count == 2 && r.has_energy);
    algalon_job_free(shared_job);
    algalon_snapshot_free(kept_snapshot);
}

int main(void) {
    shared_sampler = new_sampler(2);
    test_one_end_wins();
    test_counts_add_up();
    algalon_sampler_free(shared_sampler);
    run_threads(own_sampler);
    test_handles_outlive_the_sampler();
    return finish("test_races");
}
