// Device queries for the bindings. Never throws: no driver / no GPU -> 0 devices.
#include <cuda_runtime.h>

namespace solsa {

int cuda_device_count() noexcept {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the (non-sticky) error
    return 0;
  }
  return n;
}

}  // namespace solsa
