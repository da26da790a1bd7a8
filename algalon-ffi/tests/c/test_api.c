/*
 * The C API from C, against the fake NVML with the constant scenario
 * (algalon-core/tests/scenarios/constant.json): NULL arguments, buffer
 * sizes, the scenario's values, absent readings, jobs, missing NVML.
 * Run by algalon-ffi/tests/c_programs.rs, linked against the shared and
 * the static library, and under valgrind when it is installed.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"

static void test_version(void) {
    EXPECT(strcmp(algalon_version(), ALGALON_VERSION) == 0);
}

static void test_null_arguments(algalon_sampler *sampler, algalon_snapshot *snap) {
    algalon_snapshot *untouched = (algalon_snapshot *)(uintptr_t)1;
    size_t n = 777;
    algalon_gpu_sample gpu;
    algalon_job *job = NULL;
    EXPECT_RESULT(algalon_options_new(NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_sampler_new(NULL, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_sampler_sample(NULL, &untouched), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT(untouched == (algalon_snapshot *)(uintptr_t)1);
    EXPECT_RESULT(algalon_sampler_sample(sampler, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_snapshot_gpu_count(NULL, &n), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT(n == 777);
    EXPECT_RESULT(algalon_snapshot_gpu(snap, 0, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_snapshot_gpu(NULL, 0, &gpu), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_snapshot_encode(snap, NULL, 0, NULL), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_snapshot_encode(snap, NULL, 16, &n), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT_RESULT(algalon_job_begin(sampler, NULL, &job), ALGALON_RESULT_NULL_PARAMETER);
    EXPECT(job == NULL);
    EXPECT_RESULT(algalon_job_end(NULL, NULL), ALGALON_RESULT_NULL_PARAMETER);
    char msg[256];
    EXPECT_RESULT(algalon_last_error(msg, sizeof msg, &n), ALGALON_RESULT_OK);
    EXPECT(strcmp(msg, "algalon_job_end: argument `job` is NULL") == 0);
    algalon_sampler_free(NULL);
    algalon_snapshot_free(NULL);
    algalon_options_free(NULL);
    algalon_job_free(NULL);
}

static void test_buffers(algalon_snapshot *snap) {
    /* Ask for the size, then copy. */
    size_t need = 0;
    EXPECT_RESULT(algalon_snapshot_encode(snap, NULL, 0, &need), ALGALON_RESULT_INSUFFICIENT_SIZE);
    EXPECT(need > 1000);
    char small[16];
    memset(small, 'x', sizeof small);
    size_t n = 0;
    EXPECT_RESULT(algalon_snapshot_encode(snap, small, sizeof small, &n),
                  ALGALON_RESULT_INSUFFICIENT_SIZE);
    EXPECT(n == need);
    EXPECT(small[0] == 'x' && small[15] == 'x'); /* nothing written */
    char *text = malloc(need);
    EXPECT_RESULT(algalon_snapshot_encode(snap, text, need, &n), ALGALON_RESULT_OK);
    EXPECT(n + 1 == need && text[n] == '\0' && strlen(text) == n);
    EXPECT(strstr(text, "DCGM_FI_DEV_GPU_UTIL{gpu=\"0\"") != NULL);
    EXPECT(strstr(text, "DCGM_FI_DEV_POWER_USAGE{gpu=\"1\"") != NULL);
    /* The T4 has no energy counter: its series is left out, not 0. */
    EXPECT(strstr(text, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu=\"1\"") == NULL);
    free(text);

    char version[8];
    EXPECT_RESULT(algalon_snapshot_driver_version(snap, version, 4, &n),
                  ALGALON_RESULT_INSUFFICIENT_SIZE);
    EXPECT(n == sizeof "550.54.15");
    char version_ok[sizeof "550.54.15"];
    EXPECT_RESULT(algalon_snapshot_driver_version(snap, version_ok, sizeof version_ok, &n),
                  ALGALON_RESULT_OK);
    EXPECT(strcmp(version_ok, "550.54.15") == 0 && n == 9);
    (void)version;

    /* The last error survives its own size probe. */
    EXPECT_RESULT(algalon_snapshot_gpu(snap, 99, &(algalon_gpu_sample){0}),
                  ALGALON_RESULT_OUT_OF_RANGE);
    size_t msg_need = 0;
    EXPECT_RESULT(algalon_last_error(NULL, 0, &msg_need), ALGALON_RESULT_INSUFFICIENT_SIZE);
    char *msg = malloc(msg_need);
    EXPECT_RESULT(algalon_last_error(msg, msg_need, &n), ALGALON_RESULT_OK);
    EXPECT(strstr(msg, "algalon_snapshot_gpu: GPU position 99 is out of range") == msg);
    free(msg);
}

static void test_values(algalon_snapshot *snap) {
    size_t count = 0;
    REQUIRE_OK(algalon_snapshot_gpu_count(snap, &count));
    EXPECT(count == 2);
    algalon_gpu_sample h100, t4;
    REQUIRE_OK(algalon_snapshot_gpu(snap, 0, &h100));
    REQUIRE_OK(algalon_snapshot_gpu(snap, 1, &t4));
    EXPECT(h100.index == 0 && h100.up);
    EXPECT(strcmp(h100.name, "NVIDIA H100 80GB HBM3") == 0);
    EXPECT(strcmp(h100.uuid, "GPU-11111111-2222-3333-4444-555555555550") == 0);
    EXPECT(strcmp(h100.pci_bus_id, "00000000:18:00.0") == 0);
    EXPECT(h100.has_gpu_util && h100.gpu_util_percent == 85.0);
    EXPECT(h100.has_memory_used && h100.memory_used_bytes == 40000ull << 20);
    EXPECT(h100.has_memory_total && h100.memory_total_bytes == 81559ull << 20);
    EXPECT(h100.has_temperature && h100.temperature_c == 63.0);
    EXPECT(h100.has_power && h100.power_w == 312.5);
    EXPECT(h100.has_energy && h100.energy_mj >= 1000000);
    EXPECT(t4.index == 1 && t4.has_power && t4.power_w == 27.25);
    EXPECT(!t4.has_energy); /* absent, flagged: never a 0 reading */

    double v = -1;
    EXPECT_RESULT(algalon_snapshot_gpu_field(snap, 0, "DCGM_FI_DEV_FB_TOTAL", &v), ALGALON_RESULT_OK);
    EXPECT(v == 81559.0);
    v = -1;
    EXPECT_RESULT(algalon_snapshot_gpu_field(snap, 1, "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &v),
                  ALGALON_RESULT_NOT_AVAILABLE);
    EXPECT(v == -1);
    EXPECT_RESULT(algalon_snapshot_gpu_field(snap, 0, "NOT_A_FIELD", &v),
                  ALGALON_RESULT_UNKNOWN_FIELD);
}

static void test_job(algalon_sampler *sampler) {
    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "c-test", &job));
    struct timespec ms200 = {0, 200 * 1000 * 1000};
    nanosleep(&ms200, NULL);
    algalon_job_report report;
    REQUIRE_OK(algalon_job_end(job, &report));
    EXPECT(report.gpu_count == 2 && report.has_energy && report.duration_s >= 0.2);
    algalon_job_gpu_report h100, t4;
    REQUIRE_OK(algalon_job_gpu(job, 0, &h100));
    REQUIRE_OK(algalon_job_gpu(job, 1, &t4));
    EXPECT(h100.energy_source == ALGALON_ENERGY_SOURCE_COUNTER);
    EXPECT(fabs(h100.energy_j - 312.5 * report.duration_s) < 0.1 * 312.5 * report.duration_s);
    EXPECT(t4.energy_source == ALGALON_ENERGY_SOURCE_INTEGRATED);
    EXPECT(fabs(t4.energy_j - 27.25 * report.duration_s) < 1e-6);
    algalon_job_report again;
    EXPECT_RESULT(algalon_job_end(job, &again), ALGALON_RESULT_ALREADY_ENDED);
    algalon_job_free(job);
    /* A job that is never ended is closed by free. */
    REQUIRE_OK(algalon_job_begin(sampler, "abandoned", &job));
    algalon_job_free(job);
}

static void test_missing_nvml(void) {
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_nvml_lib(opts, "/nonexistent/libnvidia-ml.so.1"));
    algalon_sampler *sampler = NULL;
    EXPECT_RESULT(algalon_sampler_new(opts, &sampler), ALGALON_RESULT_NVML_NOT_FOUND);
    EXPECT(sampler == NULL);
    char msg[1024];
    size_t n = 0;
    EXPECT_RESULT(algalon_last_error(msg, sizeof msg, &n), ALGALON_RESULT_OK);
    EXPECT(strchr(msg, '\n') == NULL);
    EXPECT(strstr(msg, "cannot load the NVIDIA Management Library") != NULL);
    algalon_options_free(opts);
}

int main(void) {
    test_version();
    test_missing_nvml();

    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_xid_events(opts, false));
    algalon_sampler *sampler = NULL;
    REQUIRE_OK(algalon_sampler_new(opts, &sampler));
    algalon_options_free(opts); /* not needed after _new */
    algalon_snapshot *snap = NULL;
    REQUIRE_OK(algalon_sampler_sample(sampler, &snap));

    test_null_arguments(sampler, snap);
    test_buffers(snap);
    test_values(snap);
    test_job(sampler);

    algalon_snapshot_free(snap);
    algalon_sampler_free(sampler);
    return finish("test_api");
}
