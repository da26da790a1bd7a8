/*
 * Many threads on one sampler: each samples, reads the latest snapshot and
 * runs short jobs, while a background thread samples too. Every snapshot
 * must have its own sequence number and the scenario's values.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"

#define THREADS 8
#define ROUNDS 20

static algalon_sampler *sampler;
static uint64_t seqs[THREADS][ROUNDS];
static int thread_failures[THREADS];

static void *work(void *arg) {
    int t = (int)(intptr_t)arg;
    for (int k = 0; k < ROUNDS; k++) {
        algalon_snapshot *snap = NULL;
        if (algalon_sampler_sample(sampler, &snap) != ALGALON_RESULT_OK) {
            thread_failures[t]++;
            continue;
        }
        algalon_gpu_sample g;
        if (algalon_snapshot_gpu(snap, 0, &g) != ALGALON_RESULT_OK || g.gpu_util_percent != 85.0)
            thread_failures[t]++;
        if (algalon_snapshot_seq(snap, &seqs[t][k]) != ALGALON_RESULT_OK) thread_failures[t]++;
        algalon_snapshot_free(snap);

        algalon_snapshot *latest = NULL;
        if (algalon_sampler_latest(sampler, &latest) != ALGALON_RESULT_OK) thread_failures[t]++;
        algalon_snapshot_free(latest);

        if (k % 4 == t % 4) {
            algalon_job *job = NULL;
            algalon_job_report r;
            if (algalon_job_begin(sampler, "thread-job", &job) != ALGALON_RESULT_OK ||
                algalon_job_end(job, &r) != ALGALON_RESULT_OK || r.gpu_count != 2)
                thread_failures[t]++;
            algalon_job_free(job);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(void) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_interval_ms(opts, 5));
    REQUIRE_OK(algalon_sampler_new(opts, &sampler));
    algalon_options_free(opts);

    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        EXPECT(pthread_create(&threads[t], NULL, work, (void *)(intptr_t)t) == 0);
    for (int t = 0; t < THREADS; t++) {
        EXPECT(pthread_join(threads[t], NULL) == 0);
        EXPECT(thread_failures[t] == 0);
    }
    uint64_t *all = &seqs[0][0];
    qsort(all, THREADS * ROUNDS, sizeof *all, cmp_u64);
    for (int i = 1; i < THREADS * ROUNDS; i++) EXPECT(all[i] != all[i - 1]);
    algalon_sampler_free(sampler);
    return finish("test_threads");
}
