#include "kvcake/kvcake_c.h"

extern "C" const char* kvcake_version(void) { return "0.1.0"; }
