// gpu_report.cpp — the C API from C++17 with RAII: each handle lives in a
// std::unique_ptr whose deleter is the handle's algalon_*_free, so nothing
// leaks on early return or exception.
//
//   make -C examples/cpp            # builds libalgalon + the fake NVML, runs this
#include <algalon.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace algalon {

// One deleter per handle type, picked by overload.
struct Free {
    void operator()(algalon_options *p) const { algalon_options_free(p); }
    void operator()(algalon_sampler *p) const { algalon_sampler_free(p); }
    void operator()(algalon_snapshot *p) const { algalon_snapshot_free(p); }
    void operator()(algalon_job *p) const { algalon_job_free(p); }
};
template <typename T> using Handle = std::unique_ptr<T, Free>;

// Throws the thread's last error when a call fails.
inline void check(algalon_result r) {
    if (r == ALGALON_RESULT_OK) return;
    std::vector<char> msg(1024);
    size_t n = 0;
    if (algalon_last_error(msg.data(), msg.size(), &n) == ALGALON_RESULT_INSUFFICIENT_SIZE) {
        msg.resize(n);
        algalon_last_error(msg.data(), msg.size(), &n);
    }
    throw std::runtime_error("algalon_result " + std::to_string(r) + ": " + msg.data());
}

// Any (buf, len, out_n) call as a std::string: ask for the size, then copy.
template <typename F> std::string text(F &&call) {
    size_t n = 0;
    algalon_result r = call(nullptr, 0, &n);
    if (r != ALGALON_RESULT_INSUFFICIENT_SIZE) check(r);
    std::string s(n, '\0');
    check(call(s.data(), s.size(), &n));
    s.resize(n);
    return s;
}

inline Handle<algalon_sampler> sampler(const algalon_options *opts = nullptr) {
    algalon_sampler *p = nullptr;
    check(algalon_sampler_new(opts, &p));
    return Handle<algalon_sampler>(p);
}

}  // namespace algalon

int main() try {
    auto sampler = algalon::sampler();
    algalon_snapshot *raw = nullptr;
    algalon::check(algalon_sampler_sample(sampler.get(), &raw));
    algalon::Handle<algalon_snapshot> snap(raw);

    size_t count = 0;
    algalon::check(algalon_snapshot_gpu_count(snap.get(), &count));
    for (size_t i = 0; i < count; i++) {
        algalon_gpu_sample g;
        algalon::check(algalon_snapshot_gpu(snap.get(), i, &g));
        std::printf("GPU %u (%s): ", g.index, g.name);
        if (g.has_gpu_util) std::printf("%.0f%% util", g.gpu_util_percent); else std::printf("util n/a");
        if (g.has_power) std::printf(", %.0f W\n", g.power_w); else std::printf(", power n/a\n");
    }
    std::string prom = algalon::text([&](char *b, size_t l, size_t *n) {
        return algalon_snapshot_encode(snap.get(), b, l, n);
    });
    std::printf("Prometheus text: %zu bytes\n", prom.size());

    algalon_job *job_raw = nullptr;
    algalon::check(algalon_job_begin(sampler.get(), "cpp-example", &job_raw));
    algalon::Handle<algalon_job> job(job_raw);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the "work"
    algalon_job_report report;
    algalon::check(algalon_job_end(job.get(), &report));
    std::printf("%s", algalon::text([&](char *b, size_t l, size_t *n) {
                          return algalon_job_table(job.get(), b, l, n);
                      }).c_str());
    return 0;
} catch (const std::exception &e) {
    std::fprintf(stderr, "gpu_report: %s\n", e.what());
    return 1;
}
