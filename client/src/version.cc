// kvcake_version(): the version this library was built as (kvcake/version.h,
// generated from project(VERSION)).
#include "kvcake/version.h"
#include "kvcake/kvcake_c.h"

extern "C" const char* kvcake_version(void) { return KVCAKE_VERSION_STRING; }
