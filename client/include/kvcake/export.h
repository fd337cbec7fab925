/* KVCAKE_API marks what libkvcake exports. The library is built with hidden
 * visibility and a linker version script (client/kvcake.map), so only what is
 * marked here and listed there reaches its dynamic symbol table (docs/api.md).
 * C and C++. */
#ifndef KVCAKE_EXPORT_H_
#define KVCAKE_EXPORT_H_

#if defined(__GNUC__) && defined(__cplusplus)
/* The standard attribute form also fits between `class` and [[nodiscard]]. */
#define KVCAKE_API [[gnu::visibility("default")]]
#elif defined(__GNUC__)
#define KVCAKE_API __attribute__((visibility("default")))
#else
#define KVCAKE_API
#endif

#endif /* KVCAKE_EXPORT_H_ */
