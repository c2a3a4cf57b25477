/* Compiled by build.rs against the header shipped in the package. */
#include "ocipkg_static_example.h"

uint32_t ocipkg_example_answer(void) {
    return ocipkg_static_example_multiply(6, 7);
}
