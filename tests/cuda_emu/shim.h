// Runs src/ops/cuda/kernels.cu on the CPU: every launch calls the kernel once per thread of
// every block, in order. Valid for kernels whose threads do not communicate (no shared memory,
// barriers, warp intrinsics or atomics), which is how kernels.cu is written.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#define GENOLM_EMU 1
#define __global__
#define __device__
#define __forceinline__ inline

struct EmuDim {
  unsigned x;
};
static EmuDim blockIdx, threadIdx, blockDim;
#define GENOLM_IDX ((size_t)blockIdx.x * blockDim.x + threadIdx.x)

static inline void sincospi(double x, double* s, double* c) {
  *s = std::sin(M_PI * x);
  *c = std::cos(M_PI * x);
}

// kernel<<<grid, block>>>(args...), one thread at a time.
template <typename F, typename... A>
static void emu_launch(unsigned grid, unsigned block, F kernel, A... args) {
  blockDim.x = block;
  for (unsigned g = 0; g < grid; g++) {
    blockIdx.x = g;
    for (unsigned t = 0; t < block; t++) {
      threadIdx.x = t;
      kernel(args...);
    }
  }
}
