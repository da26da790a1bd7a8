// The header from C++17 (cpp_compat): compiles with -Wall -Wextra -Werror
// -pedantic, typed enums, plain structs, RAII over the handles.
#include <algalon.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <type_traits>

static_assert(std::is_same<std::underlying_type<algalon_result>::type, uint32_t>::value,
              "algalon_result is a uint32_t enum");
static_assert(std::is_standard_layout<algalon_gpu_sample>::value, "plain struct");
static_assert(std::is_trivially_copyable<algalon_job_report>::value, "plain struct");
static_assert(sizeof(algalon_gpu_sample{}.uuid) == ALGALON_UUID_SIZE, "UUID buffer");

struct Free {
    void operator()(algalon_sampler *p) const { algalon_sampler_free(p); }
    void operator()(algalon_snapshot *p) const { algalon_snapshot_free(p); }
};

int main() {
    if (std::strcmp(algalon_version(), ALGALON_VERSION) != 0) return 1;
    algalon_sampler *raw = nullptr;
    if (algalon_sampler_new(nullptr, &raw) != ALGALON_RESULT_OK) return 1;
    std::unique_ptr<algalon_sampler, Free> sampler(raw);
    algalon_snapshot *snap_raw = nullptr;
    if (algalon_sampler_sample(sampler.get(), &snap_raw) != ALGALON_RESULT_OK) return 1;
    std::unique_ptr<algalon_snapshot, Free> snap(snap_raw);
    algalon_gpu_sample gpu{};
    if (algalon_snapshot_gpu(snap.get(), 0, &gpu) != ALGALON_RESULT_OK) return 1;
    if (!gpu.has_power || gpu.power_w != 312.5) return 1;
    std::printf("test_header: ok\n");
    return 0;
}
