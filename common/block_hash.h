#pragma once

// The chained block hash is part of the public API: its definition is
// client/include/kvcake/hash_chain.h. Internal code includes it through here.

#include "kvcake/hash_chain.h"
