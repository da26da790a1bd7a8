/*
 * Lies about a buffer's size on purpose: 16 bytes allocated, the size the
 * probe asked for passed. The AddressSanitizer run of
 * algalon-ffi/tests/c_programs.rs expects a heap-buffer-overflow report,
 * which shows that writes the Rust library makes into C memory are checked
 * too, so a clean run of the other tests means something.
 */
#include "check.h"

int main(void) {
    algalon_sampler *sampler = NULL;
    REQUIRE_OK(algalon_sampler_new(NULL, &sampler));
    algalon_snapshot *snap = NULL;
    REQUIRE_OK(algalon_sampler_sample(sampler, &snap));
    size_t need = 0, n = 0;
    algalon_snapshot_encode(snap, NULL, 0, &need);
    char *buf = malloc(16);
    algalon_snapshot_encode(snap, buf, need, &n); /* the lie */
    free(buf);
    algalon_snapshot_free(snap);
    algalon_sampler_free(sampler);
    return finish("overflow_canary");
}
