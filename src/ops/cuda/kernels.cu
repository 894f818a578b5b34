// genolm's CUDA kernels: the selective scan (Mamba) and the FFT convolution (Hyena).
//
// Every kernel is written without shared memory, barriers, warp intrinsics or atomics: each
// thread's work is independent of every other thread's, and every output element is written by
// exactly one thread in a fixed order (results do not depend on the launch order). That keeps them
// deterministic on the GPU and lets tests/cuda_emu run this very file on the CPU, one thread at a
// time, against the CPU ops (tests/cuda_emulated.rs). Indexing mirrors src/ops/scan.rs and
// src/ops/fftconv.rs; the host side that launches them is in those files (`cuda` feature).
//
// One-dimensional launches only: `blockIdx.x * blockDim.x + threadIdx.x` is the work item.

#ifndef GENOLM_EMU
#define GENOLM_IDX ((size_t)blockIdx.x * blockDim.x + threadIdx.x)
#endif

// Largest state size (Mamba's N) the scan kernels keep in registers / local memory.
#define GENOLM_SCAN_MAX_N 64

__device__ __forceinline__ float genolm_exp(float x) { return expf(x); }
__device__ __forceinline__ double genolm_exp(double x) { return exp(x); }

// ---------------------------------------------------------------------------------------------
// Selective scan. Layouts (row-major, contiguous):
//   ud (B, 2D, L) = [u; delta], bc (B, 2N, L) = [Bm; Cm], a (D, N), y (B, D, L),
//   ckpt (B, D, nch, N): the state before the first step of every chunk of `chunk` steps,
//   udg (B, 3D, L) = [u; delta; dy],
//   out (flat) = [d(u, delta) (B, 2D, L) | d(Bm, Cm) (B, 2N, L) | dA (D, N)].
// h_t = exp(delta_t A) h_{t-1} + delta_t u_t Bm_t,  y_t = <Cm_t, h_t>.

// Forward: one thread per (batch, channel) row. `ud` has `rows` channels per batch element, u in
// the first D and delta in the next D: 2D for the forward's [u; delta], 3D when the backward
// recomputes the checkpoints from its [u; delta; dy].
template <typename T>
__device__ void scan_fwd(const T* ud, const T* bc, const T* a, T* y, T* ckpt, int B, int D, int N,
                         int L, int chunk, int rows) {
  size_t r = GENOLM_IDX;
  if (r >= (size_t)B * D) return;
  size_t b = r / D, d = r % D;
  const T* u = ud + (b * rows + d) * L;
  const T* dl = ud + (b * rows + D + d) * L;
  const T* bm = bc + b * 2 * N * (size_t)L;
  const T* cm = bm + (size_t)N * L;
  const T* ar = a + d * N;
  size_t nch = (L + chunk - 1) / chunk;
  T* ck = ckpt + r * nch * N;
  T* yr = y + r * L;
  T h[GENOLM_SCAN_MAX_N];
  for (int k = 0; k < N; k++) h[k] = 0;
  for (int t = 0; t < L; t++) {
    if (t % chunk == 0) {
      for (int k = 0; k < N; k++) ck[(size_t)(t / chunk) * N + k] = h[k];
    }
    T dt = dl[t];
    T bx = dt * u[t];
    T acc = 0;
    for (int k = 0; k < N; k++) {
      T e = genolm_exp(dt * ar[k]);
      h[k] = e * h[k] + bx * bm[(size_t)k * L + t];
      acc += cm[(size_t)k * L + t] * h[k];
    }
    yr[t] = acc;
  }
}

// Backward, part 1: one thread per (batch, channel) row. Writes d(u, delta) and this row's dA
// partial `dapart (B, D, N)`, and keeps the state gradient entering every chunk from the right in
// `dhc (B, D, nch, N)` for part 2. `hs (B·D, chunk + 1, N)` is scratch for a chunk's states.
template <typename T>
__device__ void scan_bwd_rows(const T* udg, const T* bc, const T* a, const T* ckpt, T* hs, T* dhc,
                              T* out, T* dapart, int B, int D, int N, int L, int chunk) {
  size_t r = GENOLM_IDX;
  if (r >= (size_t)B * D) return;
  size_t b = r / D, d = r % D;
  const T* u = udg + (b * 3 * D + d) * L;
  const T* dl = udg + (b * 3 * D + D + d) * L;
  const T* gy = udg + (b * 3 * D + 2 * D + d) * L;
  const T* bm = bc + b * 2 * N * (size_t)L;
  const T* cm = bm + (size_t)N * L;
  const T* ar = a + d * N;
  size_t nch = (L + chunk - 1) / chunk;
  const T* ck = ckpt + r * nch * N;
  T* hsr = hs + r * (size_t)(chunk + 1) * N;
  T* du = out + (b * 2 * D + d) * L;
  T* ddelta = out + (b * 2 * D + D + d) * L;
  T dh[GENOLM_SCAN_MAX_N], da[GENOLM_SCAN_MAX_N];
  for (int k = 0; k < N; k++) {
    dh[k] = 0;
    da[k] = 0;
  }
  for (long c = (long)nch - 1; c >= 0; c--) {
    int t0 = (int)c * chunk;
    int t1 = t0 + chunk < L ? t0 + chunk : L;
    for (int k = 0; k < N; k++) {
      dhc[(r * nch + c) * N + k] = dh[k];
      hsr[k] = ck[c * N + k];
    }
    for (int t = t0; t < t1; t++) {
      size_t j = t - t0;
      T dt = dl[t];
      T bx = dt * u[t];
      for (int k = 0; k < N; k++) {
        T e = genolm_exp(dt * ar[k]);
        hsr[(j + 1) * N + k] = e * hsr[j * N + k] + bx * bm[(size_t)k * L + t];
      }
    }
    for (int t = t1 - 1; t >= t0; t--) {
      size_t j = t - t0;
      T dt = dl[t], x = u[t], g = gy[t];
      T gb = 0, sa = 0;
      for (int k = 0; k < N; k++) {
        T e = genolm_exp(dt * ar[k]);
        T gk = dh[k] + g * cm[(size_t)k * L + t];
        T gdec = gk * e * hsr[j * N + k];
        da[k] += gdec * dt;
        dh[k] = gk * e;
        gb += gk * bm[(size_t)k * L + t];
        sa += gdec * ar[k];
      }
      du[t] = gb * dt;
      ddelta[t] = gb * x + sa;
    }
  }
  for (int k = 0; k < N; k++) dapart[r * N + k] = da[k];
}

// Backward, part 2: one thread per (batch, state, chunk). Sums d(Bm, Cm) over the channels in
// channel order, recomputing each channel's states of this chunk for this state index only (the
// recurrence is diagonal in the state). `hs2 (B·N·nch, chunk + 1)` is scratch.
template <typename T>
__device__ void scan_bwd_bc(const T* udg, const T* bc, const T* a, const T* ckpt, const T* dhc,
                            T* hs2, T* out, int B, int D, int N, int L, int chunk) {
  size_t nch = (L + chunk - 1) / chunk;
  size_t idx = GENOLM_IDX;
  if (idx >= (size_t)B * N * nch) return;
  size_t c = idx % nch, n = (idx / nch) % N, b = idx / (nch * N);
  int t0 = (int)c * chunk;
  int t1 = t0 + chunk < L ? t0 + chunk : L;
  const T* bm = bc + (b * 2 * N + n) * L;
  const T* cm = bc + (b * 2 * N + N + n) * L;
  T* dbc = out + (size_t)B * 2 * D * L;
  T* dbm = dbc + (b * 2 * N + n) * L;
  T* dcm = dbc + (b * 2 * N + N + n) * L;
  T* hsr = hs2 + idx * (size_t)(chunk + 1);
  for (int t = t0; t < t1; t++) {
    dbm[t] = 0;
    dcm[t] = 0;
  }
  for (size_t d = 0; d < (size_t)D; d++) {
    const T* u = udg + (b * 3 * D + d) * L;
    const T* dl = udg + (b * 3 * D + D + d) * L;
    const T* gy = udg + (b * 3 * D + 2 * D + d) * L;
    T ak = a[d * N + n];
    size_t row = b * D + d;
    hsr[0] = ckpt[(row * nch + c) * N + n];
    for (int t = t0; t < t1; t++) {
      size_t j = t - t0;
      T dt = dl[t];
      T bx = dt * u[t];
      hsr[j + 1] = genolm_exp(dt * ak) * hsr[j] + bx * bm[t];
    }
    T g = dhc[(row * nch + c) * N + n];
    for (int t = t1 - 1; t >= t0; t--) {
      size_t j = t - t0;
      T dt = dl[t];
      T gk = g + gy[t] * cm[t];
      dcm[t] += gy[t] * hsr[j + 1];
      dbm[t] += gk * (dt * u[t]);
      g = gk * genolm_exp(dt * ak);
    }
  }
}

// Backward, part 3: dA[d, n] = sum over the batch (in batch order) of the rows' partials.
template <typename T>
__device__ void scan_bwd_a(const T* dapart, T* out, int B, int D, int N, int L) {
  size_t i = GENOLM_IDX;
  if (i >= (size_t)D * N) return;
  T* da = out + (size_t)B * 2 * D * L + (size_t)B * 2 * N * L;
  T s = 0;
  for (size_t b = 0; b < (size_t)B; b++) s += dapart[b * D * N + i];
  da[i] = s;
}

// ---------------------------------------------------------------------------------------------
// FFT convolution, in double precision for every input type (as the CPU op). Complex buffers are
// interleaved (re, im) pairs, `rows` rows of `n` (a power of two) values each.

// x[r, i] = src[r, i] (or src[r, m - 1 - i] when `reverse`) for i < m, 0 beyond.
template <typename T>
__device__ void fft_pack(const T* src, double* x, int rows, int m, int n, int reverse) {
  size_t idx = GENOLM_IDX;
  if (idx >= (size_t)rows * n) return;
  size_t r = idx / n;
  int i = (int)(idx % n);
  double v = 0;
  if (i < m) v = (double)src[r * m + (reverse ? m - 1 - i : i)];
  x[2 * idx] = v;
  x[2 * idx + 1] = 0;
}

// One radix-2 Stockham (decimation in frequency) stage over sub-transforms of length `ncur`
// with stride `s` (ncur * s = n): y[q + s(2p)] = a + b, y[q + s(2p + 1)] = (a - b) w^p, where
// a = x[q + sp], b = x[q + s(p + ncur/2)], w = exp(∓2πi / ncur). log2(n) stages, starting at
// ncur = n, s = 1 and halving / doubling, leave the transform in natural order.
__device__ void fft_stage(const double* x, double* y, int rows, int n, int ncur, int s,
                          int inverse) {
  size_t idx = GENOLM_IDX;
  size_t half = (size_t)n / 2;
  if (idx >= (size_t)rows * half) return;
  size_t r = idx / half;
  size_t i = idx % half;
  size_t m = ncur / 2;
  size_t p = i / s, q = i % s;
  const double* xr = x + 2 * r * n;
  double* yr = y + 2 * r * n;
  size_t ia = q + s * p, ib = q + s * (p + m);
  double ar = xr[2 * ia], ai = xr[2 * ia + 1];
  double br = xr[2 * ib], bi = xr[2 * ib + 1];
  double sn, cs;
  sincospi(2.0 * (double)p / (double)ncur, &sn, &cs);
  if (!inverse) sn = -sn;
  size_t o0 = q + s * (2 * p), o1 = q + s * (2 * p + 1);
  yr[2 * o0] = ar + br;
  yr[2 * o0 + 1] = ai + bi;
  double dr = ar - br, di = ai - bi;
  yr[2 * o1] = dr * cs - di * sn;
  yr[2 * o1 + 1] = dr * sn + di * cs;
}

// x[r, f] *= y[r mod yrows, f] (complex).
__device__ void fft_mul(double* x, const double* y, int rows, int yrows, int n) {
  size_t idx = GENOLM_IDX;
  if (idx >= (size_t)rows * n) return;
  size_t r = idx / n, f = idx % n;
  size_t j = (r % yrows) * n + f;
  double ar = x[2 * idx], ai = x[2 * idx + 1];
  double br = y[2 * j], bi = y[2 * j + 1];
  x[2 * idx] = ar * br - ai * bi;
  x[2 * idx + 1] = ar * bi + ai * br;
}

// out[off + r * m + i] = re(x[r, (shift + i) mod n]) / n for i < m (x holds an unscaled
// inverse; the index wraps because a correlation's lag can be negative).
template <typename T>
__device__ void fft_take(const double* x, T* out, size_t off, int rows, int n, int shift, int m) {
  size_t idx = GENOLM_IDX;
  if (idx >= (size_t)rows * m) return;
  size_t r = idx / m, i = idx % m;
  out[off + idx] = (T)(x[2 * (r * n + ((size_t)shift + i) % n)] / (double)n);
}

// out[off + d * k + j] = sum over b (in batch order) of part[(b * dd + d) * k + j].
template <typename T>
__device__ void fft_sum_batch(const T* part, T* out, size_t off, int bsz, int dd, int k) {
  size_t idx = GENOLM_IDX;
  if (idx >= (size_t)dd * k) return;
  T s = 0;
  for (size_t b = 0; b < (size_t)bsz; b++) s += part[b * (size_t)dd * k + idx];
  out[off + idx] = s;
}

// ---------------------------------------------------------------------------------------------
// Entry points (unmangled names: genolm_<kernel>_<dtype>).

#define GENOLM_TYPED_KERNELS(T, S)                                                               \
  extern "C" __global__ void genolm_scan_fwd_##S(const T* ud, const T* bc, const T* a, T* y,     \
                                                 T* ckpt, int B, int D, int N, int L,            \
                                                 int chunk, int rows) {                          \
    scan_fwd<T>(ud, bc, a, y, ckpt, B, D, N, L, chunk, rows);                                    \
  }                                                                                              \
  extern "C" __global__ void genolm_scan_bwd_rows_##S(                                           \
      const T* udg, const T* bc, const T* a, const T* ckpt, T* hs, T* dhc, T* out, T* dapart,    \
      int B, int D, int N, int L, int chunk) {                                                   \
    scan_bwd_rows<T>(udg, bc, a, ckpt, hs, dhc, out, dapart, B, D, N, L, chunk);                 \
  }                                                                                              \
  extern "C" __global__ void genolm_scan_bwd_bc_##S(const T* udg, const T* bc, const T* a,       \
                                                    const T* ckpt, const T* dhc, T* hs2, T* out, \
                                                    int B, int D, int N, int L, int chunk) {     \
    scan_bwd_bc<T>(udg, bc, a, ckpt, dhc, hs2, out, B, D, N, L, chunk);                          \
  }                                                                                              \
  extern "C" __global__ void genolm_scan_bwd_a_##S(const T* dapart, T* out, int B, int D, int N, \
                                                   int L) {                                      \
    scan_bwd_a<T>(dapart, out, B, D, N, L);                                                      \
  }                                                                                              \
  extern "C" __global__ void genolm_fft_pack_##S(const T* src, double* x, int rows, int m,       \
                                                 int n, int reverse) {                           \
    fft_pack<T>(src, x, rows, m, n, reverse);                                                    \
  }                                                                                              \
  extern "C" __global__ void genolm_fft_take_##S(const double* x, T* out, unsigned long long off, \
                                                 int rows, int n, int shift, int m) {            \
    fft_take<T>(x, out, (size_t)off, rows, n, shift, m);                                         \
  }                                                                                              \
  extern "C" __global__ void genolm_fft_sum_batch_##S(const T* part, T* out,                     \
                                                      unsigned long long off, int bsz, int dd,   \
                                                      int k) {                                   \
    fft_sum_batch<T>(part, out, (size_t)off, bsz, dd, k);                                        \
  }

GENOLM_TYPED_KERNELS(float, f32)
GENOLM_TYPED_KERNELS(double, f64)

extern "C" __global__ void genolm_fft_stage(const double* x, double* y, int rows, int n, int ncur,
                                            int s, int inverse) {
  fft_stage(x, y, rows, n, ncur, s, inverse);
}

extern "C" __global__ void genolm_fft_mul(double* x, const double* y, int rows, int yrows, int n) {
  fft_mul(x, y, rows, yrows, n);
}
