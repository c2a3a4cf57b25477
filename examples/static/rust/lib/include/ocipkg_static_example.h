/* C interface of the ocipkg static example library. */
#ifndef OCIPKG_STATIC_EXAMPLE_H
#define OCIPKG_STATIC_EXAMPLE_H

#include <stdint.h>

/* a * b, wrapping on overflow. */
uint32_t ocipkg_static_example_multiply(uint32_t a, uint32_t b);

/* How many decimal digits n has. */
uint32_t ocipkg_static_example_digits(uint64_t n);

#endif
