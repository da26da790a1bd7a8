/*
 * Run with the fake NVML but no scenario (ALGALON_FAKE_NVML_SCENARIO unset):
 * NVML loads but refuses to initialise, as without a driver.
 */
#include <string.h>

#include "check.h"

int main(void) {
    algalon_sampler *sampler = NULL;
    EXPECT_RESULT(algalon_sampler_new(NULL, &sampler), ALGALON_RESULT_NVML_INIT);
    EXPECT(sampler == NULL);
    char msg[1024];
    size_t n = 0;
    EXPECT_RESULT(algalon_last_error(msg, sizeof msg, &n), ALGALON_RESULT_OK);
    EXPECT(strchr(msg, '\n') == NULL);
    EXPECT(strstr(msg, "algalon_sampler_new: NVML at ") == msg);
    EXPECT(strstr(msg, "failed to initialise") != NULL);
    printf("%s\n", msg);

    char desc[128];
    EXPECT_RESULT(algalon_result_message(ALGALON_RESULT_NVML_INIT, desc, sizeof desc, &n),
                  ALGALON_RESULT_OK);
    EXPECT(strcmp(desc, "NVML failed to initialise") == 0);
    return finish("test_errors");
}
