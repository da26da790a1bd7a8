/*
 * Leaks on purpose: a snapshot that is never freed. The AddressSanitizer
 * run of algalon-ffi/tests/c_programs.rs expects LeakSanitizer to report
 * it, which shows that allocations made by the Rust library are watched
 * too, so a clean run of the other tests means something.
 */
#include "check.h"

int main(void) {
    algalon_sampler *sampler = NULL;
    REQUIRE_OK(algalon_sampler_new(NULL, &sampler));
    algalon_snapshot *snap = NULL;
    REQUIRE_OK(algalon_sampler_sample(sampler, &snap));
    snap = NULL; /* lost */
    algalon_sampler_free(sampler);
    return finish("leak_canary");
}
