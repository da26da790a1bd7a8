/*
 * A GPU lost in the middle of a job, with the fake NVML's gpu-lost.json
 * scenario (the constant scenario's H100 falls off the bus at t = 3 s, late
 * enough that the job begins first even under valgrind on a busy machine; the
 * T4 stays). The lost GPU is marked down with every reading absent and a
 * reason; the job still ends with a report for both GPUs; nothing leaks.
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

/* Whether GPU 0 of a fresh sample is up; the snapshot is returned in *out. */
static bool gpu0_up(algalon_sampler *sampler, algalon_snapshot **out) {
    REQUIRE_OK(algalon_sampler_sample(sampler, out));
    algalon_gpu_sample g;
    REQUIRE_OK(algalon_snapshot_gpu(*out, 0, &g));
    return g.up;
}

int main(void) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_xid_events(opts, false));
    REQUIRE_OK(algalon_options_set_interval_ms(opts, 20));
    algalon_sampler *sampler = NULL;
    REQUIRE_OK(algalon_sampler_new(opts, &sampler));
    algalon_options_free(opts);

    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "survives", &job));
    algalon_snapshot *snap = NULL;
    if (!gpu0_up(sampler, &snap)) {
        fprintf(stderr, "GPU 0 was lost before the job began (a very slow run?)\n");
        return 2;
    }
    algalon_snapshot_free(snap);

    /* Wait (bounded) for the loss. */
    bool up = true;
    for (int k = 0; k < 400 && up; k++) {
        sleep_ms(50);
        up = gpu0_up(sampler, &snap);
        if (up) algalon_snapshot_free(snap);
    }
    EXPECT(!up);
    if (up) return finish("test_gpu_lost");

    algalon_gpu_sample lost, t4;
    REQUIRE_OK(algalon_snapshot_gpu(snap, 0, &lost));
    REQUIRE_OK(algalon_snapshot_gpu(snap, 1, &t4));
    EXPECT(!lost.up && t4.up);
    /* Down: every reading absent, never a 0 passed off as one. */
    EXPECT(!lost.has_gpu_util && !lost.has_memory_used && !lost.has_power && !lost.has_energy &&
           !lost.has_temperature && !lost.has_sm_clock);
    EXPECT(t4.has_power && t4.power_w == 27.25);
    double v = -1;
    EXPECT_RESULT(algalon_snapshot_gpu_field(snap, 0, "DCGM_FI_DEV_POWER_USAGE", &v),
                  ALGALON_RESULT_NOT_AVAILABLE);
    EXPECT(v == -1);

    /* The reason, by the string protocol with exact heap buffers. */
    size_t need = 0, n = 0;
    EXPECT_RESULT(algalon_snapshot_gpu_down_reason(snap, 0, NULL, 0, &need),
                  ALGALON_RESULT_INSUFFICIENT_SIZE);
    char *small = malloc(need - 1);
    EXPECT_RESULT(algalon_snapshot_gpu_down_reason(snap, 0, small, need - 1, &n),
                  ALGALON_RESULT_INSUFFICIENT_SIZE);
    EXPECT(n == need);
    free(small);
    char *why = malloc(need);
    EXPECT_RESULT(algalon_snapshot_gpu_down_reason(snap, 0, why, need, &n), ALGALON_RESULT_OK);
    EXPECT(n + 1 == need && strstr(why, "fell off the bus") != NULL);
    printf("GPU 0 down: %s\n", why);
    free(why);
    char buf[8];
    EXPECT_RESULT(algalon_snapshot_gpu_down_reason(snap, 1, buf, sizeof buf, &n),
                  ALGALON_RESULT_NOT_AVAILABLE);

    /* The exposition says so: algalon_gpu_up 0, no readings of GPU 0, the T4's still there. */
    need = 0;
    EXPECT_RESULT(algalon_snapshot_encode(snap, NULL, 0, &need), ALGALON_RESULT_INSUFFICIENT_SIZE);
    char *text = malloc(need);
    EXPECT_RESULT(algalon_snapshot_encode(snap, text, need, &n), ALGALON_RESULT_OK);
    EXPECT(strstr(text, "algalon_gpu_up{gpu=\"0\"") != NULL);
    EXPECT(strstr(text, "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\"") == NULL);
    EXPECT(strstr(text, "DCGM_FI_DEV_POWER_USAGE{gpu=\"1\"") != NULL);
    free(text);
    algalon_snapshot_free(snap);

    /* The job ends normally, with both GPUs; the lost one stopped counting samples. */
    sleep_ms(100);
    algalon_job_report report;
    EXPECT_RESULT(algalon_job_end(job, &report), ALGALON_RESULT_OK);
    EXPECT(report.gpu_count == 2);
    algalon_job_gpu_report h100, t4_job;
    REQUIRE_OK(algalon_job_gpu(job, 0, &h100));
    REQUIRE_OK(algalon_job_gpu(job, 1, &t4_job));
    EXPECT(h100.samples >= 1 && h100.samples < t4_job.samples);
    EXPECT(t4_job.has_energy && t4_job.energy_source == ALGALON_ENERGY_SOURCE_INTEGRATED);
    EXPECT(t4_job.has_power && t4_job.power_mean_w == 27.25);
    printf("job: H100 %llu samples, T4 %llu samples\n", (unsigned long long)h100.samples,
           (unsigned long long)t4_job.samples);
    need = 0;
    EXPECT_RESULT(algalon_job_table(job, NULL, 0, &need), ALGALON_RESULT_INSUFFICIENT_SIZE);
    char *table = malloc(need);
    EXPECT_RESULT(algalon_job_table(job, table, need, &n), ALGALON_RESULT_OK);
    printf("%s", table);
    free(table);

    /* A new job after the loss: still both GPUs, GPU 0 never up in it. */
    algalon_job *after = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "after", &after));
    REQUIRE_OK(algalon_job_end(after, &report));
    algalon_job_gpu_report g;
    REQUIRE_OK(algalon_job_gpu(after, 0, &g));
    EXPECT(g.samples == 0 && !g.has_power && !g.has_energy);
    algalon_job_free(after);

    algalon_sampler_free(sampler);
    algalon_job_free(job);
    return finish("test_gpu_lost");
}
