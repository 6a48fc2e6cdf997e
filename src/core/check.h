// MERIDIAN_CHECK: an invariant that stays on in release builds and stops the process.
#pragma once

#include <cstdio>
#include <cstdlib>

#define MERIDIAN_CHECK(condition)                                                              \
  do {                                                                                         \
    if (!(condition)) [[unlikely]] {                                                           \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                            \
    }                                                                                          \
  } while (false)
