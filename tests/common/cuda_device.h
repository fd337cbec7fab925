#pragma once

// Whether the GPU tests have a CUDA device to run on (header-only; the
// targets that include it link CUDA::cudart).

#include <cuda_runtime.h>

namespace kvcake::testing {

// True when the CUDA runtime reports at least one device; a runtime error
// (no driver, no device) is cleared and means none.
inline bool HaveCudaDevice() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return n > 0;
}

}  // namespace kvcake::testing
