/*
 * gpu_report.c — one line per GPU, then the energy of a short job window.
 *
 *   make -C examples/c run          # builds libalgalon + the fake NVML, runs this
 *
 * or by hand, after `make fake-nvml` and `cargo build -p algalon-ffi`:
 *
 *   gcc -std=c11 -Wall -Wextra -Werror -pedantic -Ialgalon-ffi/include \
 *       examples/c/gpu_report.c -Ltarget/debug -lalgalon -o gpu_report
 *   ALGALON_NVML_LIB=target/fake-nvml/libnvidia-ml.so.1 \
 *   ALGALON_FAKE_NVML_SCENARIO=algalon-core/tests/scenarios/constant.json \
 *   LD_LIBRARY_PATH=target/debug ./gpu_report
 *
 * On a machine with NVIDIA GPUs, drop both ALGALON_* variables. After
 * `make install`, build with `cc gpu_report.c $(pkg-config --cflags --libs algalon)`.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "algalon.h"

/* Prints the reason for the last failure on this thread and exits. */
static void die(const char *what, algalon_result r) {
    char msg[1024];
    size_t n = 0;
    if (algalon_last_error(msg, sizeof msg, &n) != ALGALON_RESULT_OK) {
        strcpy(msg, "(message longer than 1 KiB)");
    }
    fprintf(stderr, "gpu_report: %s failed (algalon_result %u): %s\n", what, (unsigned)r, msg);
    exit(1);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        algalon_result r_ = (call);                                                                \
        if (r_ != ALGALON_RESULT_OK) die(#call, r_);                                               \
    } while (0)

/* "85" or "?" when the reading is absent: never print 0 for unknown. */
static const char *num(char *buf, size_t len, bool has, double v, int digits) {
    if (has) {
        snprintf(buf, len, "%.*f", digits, v);
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

static void print_gpu(const algalon_snapshot *snap, size_t i) {
    algalon_gpu_sample g;
    CHECK(algalon_snapshot_gpu(snap, i, &g));
    if (!g.up) {
        char reason[256] = "";
        size_t n = 0;
        algalon_snapshot_gpu_down_reason(snap, i, reason, sizeof reason, &n);
        printf("GPU %u: down (%s)\n", g.index, reason);
        return;
    }
    const double gib = 1024.0 * 1024.0 * 1024.0;
    char util[32], used[32], total[32], temp[32], power[32];
    printf("GPU %u: %s%% util, %s/%s GiB, %s C, %s W (%s)\n", g.index,
           num(util, sizeof util, g.has_gpu_util, g.gpu_util_percent, 0),
           num(used, sizeof used, g.has_memory_used, (double)g.memory_used_bytes / gib, 1),
           num(total, sizeof total, g.has_memory_total, (double)g.memory_total_bytes / gib, 1),
           num(temp, sizeof temp, g.has_temperature, g.temperature_c, 0),
           num(power, sizeof power, g.has_power, g.power_w, 0), g.name);
}

int main(void) {
    if (strcmp(algalon_version(), ALGALON_VERSION) != 0) {
        fprintf(stderr, "gpu_report: header %s but library %s\n", ALGALON_VERSION,
                algalon_version());
        return 1;
    }

    /* NULL options: every GPU, the system's NVML (or $ALGALON_NVML_LIB). */
    algalon_sampler *sampler = NULL;
    CHECK(algalon_sampler_new(NULL, &sampler));

    algalon_snapshot *snap = NULL;
    CHECK(algalon_sampler_sample(sampler, &snap));
    size_t count = 0;
    CHECK(algalon_snapshot_gpu_count(snap, &count));
    for (size_t i = 0; i < count; i++) print_gpu(snap, i);

    /* The Prometheus text, by the ask-for-size protocol. */
    size_t need = 0;
    algalon_result r = algalon_snapshot_encode(snap, NULL, 0, &need);
    if (r != ALGALON_RESULT_INSUFFICIENT_SIZE) die("algalon_snapshot_encode (size)", r);
    char *text = malloc(need);
    if (text == NULL) return 1;
    size_t written = 0;
    CHECK(algalon_snapshot_encode(snap, text, need, &written));
    printf("Prometheus text: %zu bytes, %s", written, strstr(text, "DCGM_FI_DEV_GPU_UTIL{") ? "with DCGM_FI_DEV_GPU_UTIL\n" : "without GPU series\n");
    free(text);
    algalon_snapshot_free(snap);

    /* A job window: energy between two boundary samples. */
    algalon_job *job = NULL;
    CHECK(algalon_job_begin(sampler, "example", &job));
    struct timespec work = {0, 300 * 1000 * 1000}; /* stands in for real GPU work */
    nanosleep(&work, NULL);
    CHECK(algalon_job_add_count(job, "tokens", 1000));
    algalon_job_report report;
    CHECK(algalon_job_end(job, &report));
    char total[32];
    printf("job example: %.2f s, %s J\n", report.duration_s,
           num(total, sizeof total, report.has_energy, report.energy_j, 1));
    for (size_t i = 0; i < report.gpu_count; i++) {
        algalon_job_gpu_report g;
        CHECK(algalon_job_gpu(job, i, &g));
        char energy[32], power[32];
        const char *source = g.energy_source == ALGALON_ENERGY_SOURCE_COUNTER      ? "counter"
                             : g.energy_source == ALGALON_ENERGY_SOURCE_INTEGRATED ? "integrated"
                                                                                   : "unknown";
        printf("  GPU %u: %s J (%s), %s W mean\n", g.index,
               num(energy, sizeof energy, g.has_energy, g.energy_j, 1), source,
               num(power, sizeof power, g.has_power, g.power_mean_w, 1));
    }
    algalon_job_free(job);
    algalon_sampler_free(sampler);
    return 0;
}
