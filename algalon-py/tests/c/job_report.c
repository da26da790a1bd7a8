/* One job through the C library, printed as its JSON report: the C half of
 * test_faces.py, which runs the same job through the Python package and
 * compares the two reports field by field.
 *
 * Usage: job_report NAME SLEEP_MS
 * NVML comes from $ALGALON_NVML_LIB, CUDA_VISIBLE_DEVICES from the
 * environment; the job counts PID 4242's memory as its own and 1234 tokens. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "algalon.h"

static int fail(const char *what) {
    char msg[1024];
    size_t n = 0;
    algalon_last_error(msg, sizeof msg, &n);
    fprintf(stderr, "%s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: job_report NAME SLEEP_MS\n");
        return 2;
    }
    long ms = strtol(argv[2], NULL, 10);
    algalon_options *opts = NULL;
    algalon_sampler *sampler = NULL;
    algalon_job *job = NULL;
    if (algalon_options_new(&opts) != ALGALON_RESULT_OK) return fail("options");
    algalon_options_set_processes(opts, true);
    algalon_options_set_xid_events(opts, false);
    if (algalon_sampler_new(opts, &sampler) != ALGALON_RESULT_OK) return fail("sampler");
    algalon_options_free(opts);
    if (algalon_job_begin(sampler, argv[1], &job) != ALGALON_RESULT_OK) return fail("begin");
    if (algalon_job_add_pid(job, 4242) != ALGALON_RESULT_OK) return fail("add_pid");
    if (algalon_job_add_count(job, "tokens", 1234) != ALGALON_RESULT_OK) return fail("count");
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    algalon_job_report totals;
    if (algalon_job_end(job, &totals) != ALGALON_RESULT_OK) return fail("end");
    size_t n = 0;
    if (algalon_job_report_json(job, NULL, 0, &n) != ALGALON_RESULT_INSUFFICIENT_SIZE)
        return fail("size probe");
    char *json = malloc(n);
    if (json == NULL || algalon_job_report_json(job, json, n, &n) != ALGALON_RESULT_OK)
        return fail("json");
    puts(json);
    free(json);
    algalon_job_free(job);
    algalon_sampler_free(sampler);
    return 0;
}
