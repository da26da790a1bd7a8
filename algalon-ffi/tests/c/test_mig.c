/*
 * A job pinned to a MIG device, with the fake NVML's h100-mig scenario:
 * CUDA_VISIBLE_DEVICES (here algalon_options_set_visible_devices) names
 * GPU 1's 3g.40gb instance. The report gives the instance's memory, GPM
 * activity and processes (this program among them), the parent GPU's energy
 * marked as shared (ALGALON_ENERGY_SCOPE_PARENT_GPU) and the instance's
 * share by compute slices (3/7) as an estimate. A MIG UUID that does not
 * exist is one NO_SUCH_DEVICE error naming the MIG devices there are.
 *
 * The scenario given in ALGALON_FAKE_NVML_SCENARIO is a template whose
 * process 999999999 runs on that instance: this program writes a copy with
 * its own PID there and uses it. Run by algalon-ffi/tests/c_programs.rs,
 * plain, under valgrind and under AddressSanitizer + UBSan.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define GPU1 "GPU-a3c81f52-6d0e-4b9a-8f27-5e1d9c4b7011"
#define GI2 "MIG-9d27f4a1-3c8e-5b06-a2d4-6e1f0c7b5901"
#define PLACEHOLDER "999999999"
#define MIB (1024ull * 1024ull)

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* The template with this process's PID in place of PLACEHOLDER, written to
 * `path` (a mkstemp name) and made the scenario. */
static void own_scenario(char *path) {
    const char *template_path = getenv("ALGALON_FAKE_NVML_SCENARIO");
    if (!template_path) {
        fprintf(stderr, "ALGALON_FAKE_NVML_SCENARIO is not set\n");
        exit(2);
    }
    FILE *in = fopen(template_path, "rb");
    if (!in) {
        perror(template_path);
        exit(2);
    }
    fseek(in, 0, SEEK_END);
    long size = ftell(in);
    fseek(in, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (!text || fread(text, 1, (size_t)size, in) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", template_path);
        exit(2);
    }
    text[size] = '\0';
    fclose(in);
    char *at = strstr(text, PLACEHOLDER);
    if (!at) {
        fprintf(stderr, "%s has no process " PLACEHOLDER "\n", template_path);
        exit(2);
    }
    int fd = mkstemp(path);
    FILE *out = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!out) {
        perror(path);
        exit(2);
    }
    fwrite(text, 1, (size_t)(at - text), out);
    fprintf(out, "%ld", (long)getpid());
    fputs(at + strlen(PLACEHOLDER), out);
    fclose(out);
    free(text);
    setenv("ALGALON_FAKE_NVML_SCENARIO", path, 1);
}

int main(void) {
    char path[] = "/tmp/algalon-test-mig-XXXXXX";
    own_scenario(path);

    /* A MIG UUID that does not exist: one error naming the MIG devices. */
    algalon_options *opts = NULL;
    REQUIRE_OK(algalon_options_new(&opts));
    REQUIRE_OK(algalon_options_set_xid_events(opts, false));
    REQUIRE_OK(algalon_options_set_visible_devices(opts, "MIG-00000000-0000-0000-0000-000000000000"));
    algalon_sampler *sampler = NULL;
    EXPECT_RESULT(algalon_sampler_new(opts, &sampler), ALGALON_RESULT_NO_SUCH_DEVICE);
    EXPECT(sampler == NULL);
    char msg[8192] = "";
    size_t n = 0;
    REQUIRE_OK(algalon_last_error(msg, sizeof msg, &n));
    EXPECT(strstr(msg, "CUDA_VISIBLE_DEVICES entry \"MIG-00000000-0000-0000-0000-000000000000\"") != NULL);
    EXPECT(strstr(msg, "GPU 1 GI 2 CI 0 (3g.40gb, " GI2 ")") != NULL);
    EXPECT(strchr(msg, '\n') == NULL);

    /* The instance, with this process on it. */
    REQUIRE_OK(algalon_options_set_visible_devices(opts, GI2));
    REQUIRE_OK(algalon_options_set_processes(opts, true));
    REQUIRE_OK(algalon_options_set_interval_ms(opts, 50));
    REQUIRE_OK(algalon_sampler_new(opts, &sampler));
    algalon_options_free(opts);

    algalon_job *job = NULL;
    REQUIRE_OK(algalon_job_begin(sampler, "serve", &job));
    sleep_ms(600);
    algalon_job_report r;
    REQUIRE_OK(algalon_job_end(job, &r));
    EXPECT(r.gpu_count == 1);
    /* The job's total never takes the shared GPU whole... */
    EXPECT(!r.has_energy);
    algalon_job_gpu_report g;
    REQUIRE_OK(algalon_job_gpu(job, 0, &g));
    /* The parent GPU, the instance under it, cuda:0. */
    EXPECT(g.is_mig && strcmp(g.mig_uuid, GI2) == 0 && strcmp(g.mig_profile, "3g.40gb") == 0);
    EXPECT(g.index == 1 && strcmp(g.uuid, GPU1) == 0);
    EXPECT(g.has_cuda_index && g.cuda_index == 0);
    EXPECT(g.has_mig_instance_ids && g.mig_gpu_instance_id == 2 && g.mig_compute_instance_id == 0);
    /* Memory is the instance's (the whole GPU uses 47115 MiB). */
    EXPECT(g.has_memory_peak && g.memory_peak_bytes == 30733 * MIB);
    EXPECT(g.has_mig_memory_total && g.mig_memory_total_bytes == 40448 * MIB);
    /* Its processes: vllm and this program, whose memory is the job's. */
    EXPECT(g.mig_process_count == 2);
    EXPECT(g.has_process_memory_peak && g.process_memory_peak_bytes == 2048 * MIB);
    /* GPM per GPU instance: SM activity is a sine around 60 %. */
    EXPECT(g.has_mig_sm_active && g.mig_sm_active_mean > 0.45 && g.mig_sm_active_mean < 0.75);
    EXPECT(g.has_mig_sm_occupancy && g.has_mig_tensor_active && g.has_mig_dram_active);
    EXPECT(!g.has_util);
    EXPECT(!g.mig_destroyed);
    /* Energy: the parent GPU's, said so, and the share by compute slices. */
    EXPECT(g.energy_scope == ALGALON_ENERGY_SCOPE_PARENT_GPU);
    EXPECT(g.has_energy && g.energy_j > 0 && g.energy_source == ALGALON_ENERGY_SOURCE_COUNTER);
    EXPECT(g.mig_slices == 3 && g.mig_parent_slices == 7);
    EXPECT(g.has_energy_estimate && fabs(g.energy_estimate_j - g.energy_j * 3.0 / 7.0) < 1e-9 * g.energy_j);
    /* ...and its estimate adds the instance's share. */
    EXPECT(r.has_energy_estimate && fabs(r.energy_estimate_j - g.energy_estimate_j) < 1e-9 * g.energy_j);

    /* The JSON lists the instance's processes by PID, ascending. */
    size_t need = 0;
    EXPECT_RESULT(algalon_job_report_json(job, NULL, 0, &need), ALGALON_RESULT_INSUFFICIENT_SIZE);
    char *json = malloc(need);
    REQUIRE_OK(algalon_job_report_json(job, json, need, &n));
    char pids[64];
    long me = (long)getpid();
    if (me < 6201)
        snprintf(pids, sizeof pids, "\"pids\":[%ld,6201]", me);
    else
        snprintf(pids, sizeof pids, "\"pids\":[6201,%ld]", me);
    EXPECT(strstr(json, pids) != NULL);
    EXPECT(strstr(json, "\"energy_scope\":\"parent_gpu\"") != NULL);
    EXPECT(strstr(json, "\"schema\":4") != NULL);
    free(json);

    algalon_job_free(job);
    algalon_sampler_free(sampler);
    remove(path);
    return finish("test_mig");
}
