// Host side of the emulated CUDA kernels: the same launch sequence as the `cuda_fwd` code in
// src/ops/scan.rs and src/ops/fftconv.rs, with buffers in host memory. Driven by
// tests/cuda_emulated.rs: `driver OP DTYPE DIR DIMS...` reads DIR/<input>.bin (raw
// little-endian values of DTYPE) and writes DIR/out.bin.
#include "shim.h"
#include "../../src/ops/cuda/kernels.cu"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static const unsigned BLOCK = 128;
static unsigned grid_for(size_t items) { return (unsigned)((items + BLOCK - 1) / BLOCK); }

template <typename T>
static std::vector<T> load(const std::string& dir, const char* name, size_t count) {
  std::vector<T> v(count);
  std::string p = dir + "/" + name + ".bin";
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f || std::fread(v.data(), sizeof(T), count, f) != count) {
    std::fprintf(stderr, "driver: cannot read %zu values from %s\n", count, p.c_str());
    std::exit(2);
  }
  std::fclose(f);
  return v;
}

template <typename T>
static void save(const std::string& dir, const std::vector<T>& v) {
  std::string p = dir + "/out.bin";
  FILE* f = std::fopen(p.c_str(), "wb");
  if (!f || std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) {
    std::fprintf(stderr, "driver: cannot write %s\n", p.c_str());
    std::exit(2);
  }
  std::fclose(f);
}

// Kernel entry points by dtype.
template <typename T> struct K;
#define GENOLM_K(T, S)                                        \
  template <> struct K<T> {                                   \
    static constexpr auto scan_fwd = genolm_scan_fwd_##S;     \
    static constexpr auto bwd_rows = genolm_scan_bwd_rows_##S; \
    static constexpr auto bwd_bc = genolm_scan_bwd_bc_##S;    \
    static constexpr auto bwd_a = genolm_scan_bwd_a_##S;      \
    static constexpr auto pack = genolm_fft_pack_##S;         \
    static constexpr auto take = genolm_fft_take_##S;         \
    static constexpr auto sum_batch = genolm_fft_sum_batch_##S; \
  };
GENOLM_K(float, f32)
GENOLM_K(double, f64)

template <typename T>
static void scan_forward(const std::vector<T>& ud, const std::vector<T>& bc, const std::vector<T>& a,
                         std::vector<T>& y, std::vector<T>& ckpt, int B, int D, int N, int L,
                         int chunk, int rows) {
  size_t nch = (L + chunk - 1) / chunk;
  y.assign((size_t)B * D * L, 0);
  ckpt.assign((size_t)B * D * nch * N, 0);
  emu_launch(grid_for((size_t)B * D), BLOCK, K<T>::scan_fwd, ud.data(), bc.data(), a.data(),
             y.data(), ckpt.data(), B, D, N, L, chunk, rows);
}

// Returns which of the two buffers holds the transform.
static double* fft(double* x, double* y, int rows, int n, int inverse) {
  int s = 1;
  for (int ncur = n; ncur > 1; ncur /= 2) {
    emu_launch(grid_for((size_t)rows * n / 2), BLOCK, genolm_fft_stage, (const double*)x, y, rows,
               n, ncur, s, inverse);
    double* t = x;
    x = y;
    y = t;
    s *= 2;
  }
  return x;
}

static int fft_len(int need) {
  int n = 1;
  while (n < need) n *= 2;
  return n;
}

// Pack `rows` rows of length m (optionally reversed) and transform them.
template <typename T>
static double* forward_rows(const T* src, std::vector<double>& x, std::vector<double>& tmp,
                            int rows, int m, int n, int reverse) {
  x.assign((size_t)rows * n * 2, 0);
  tmp.assign((size_t)rows * n * 2, 0);
  emu_launch(grid_for((size_t)rows * n), BLOCK, K<T>::pack, src, x.data(), rows, m, n, reverse);
  return fft(x.data(), tmp.data(), rows, n, 0);
}

template <typename T>
static int run(const std::string& op, const std::string& dir, int argc, char** argv) {
  if (op == "scan_fwd" || op == "scan_bwd") {
    if (argc < 5) return 2;
    int B = std::atoi(argv[0]), D = std::atoi(argv[1]), N = std::atoi(argv[2]),
        L = std::atoi(argv[3]), chunk = std::atoi(argv[4]);
    size_t nch = (L + chunk - 1) / chunk;
    auto bc = load<T>(dir, "bc", (size_t)B * 2 * N * L);
    auto a = load<T>(dir, "a", (size_t)D * N);
    std::vector<T> y, ckpt;
    if (op == "scan_fwd") {
      auto ud = load<T>(dir, "ud", (size_t)B * 2 * D * L);
      scan_forward(ud, bc, a, y, ckpt, B, D, N, L, chunk, 2 * D);
      save(dir, y);
      return 0;
    }
    auto udg = load<T>(dir, "udg", (size_t)B * 3 * D * L);
    // The backward recomputes the forward's checkpoints from [u; delta; dy].
    scan_forward(udg, bc, a, y, ckpt, B, D, N, L, chunk, 3 * D);
    std::vector<T> hs((size_t)B * D * (chunk + 1) * N), dhc((size_t)B * D * nch * N),
        dapart((size_t)B * D * N), hs2((size_t)B * N * nch * (chunk + 1));
    std::vector<T> out((size_t)B * 2 * D * L + (size_t)B * 2 * N * L + (size_t)D * N, 0);
    emu_launch(grid_for((size_t)B * D), BLOCK, K<T>::bwd_rows, (const T*)udg.data(),
               (const T*)bc.data(), (const T*)a.data(), (const T*)ckpt.data(), hs.data(),
               dhc.data(), out.data(), dapart.data(), B, D, N, L, chunk);
    emu_launch(grid_for((size_t)B * N * nch), BLOCK, K<T>::bwd_bc, (const T*)udg.data(),
               (const T*)bc.data(), (const T*)a.data(), (const T*)ckpt.data(),
               (const T*)dhc.data(), hs2.data(), out.data(), B, D, N, L, chunk);
    emu_launch(grid_for((size_t)D * N), BLOCK, K<T>::bwd_a, (const T*)dapart.data(), out.data(),
               B, D, N, L);
    save(dir, out);
    return 0;
  }
  if (op == "fft_fwd" || op == "fft_bwd") {
    if (argc < 5) return 2;
    int B = std::atoi(argv[0]), D = std::atoi(argv[1]), L = std::atoi(argv[2]),
        Kl = std::atoi(argv[3]), offset = std::atoi(argv[4]);
    int n = fft_len(L + Kl - 1);
    int rows = B * D;
    auto u = load<T>(dir, "u", (size_t)rows * L);
    auto k = load<T>(dir, "k", (size_t)D * Kl);
    std::vector<double> x1, t1, x2, t2, x3, t3;
    if (op == "fft_fwd") {
      // y = (u * k)[offset + i].
      double* U = forward_rows(u.data(), x1, t1, rows, L, n, 0);
      double* Kf = forward_rows(k.data(), x2, t2, D, Kl, n, 0);
      emu_launch(grid_for((size_t)rows * n), BLOCK, genolm_fft_mul, U, (const double*)Kf, rows, D,
                 n);
      double* other = U == x1.data() ? t1.data() : x1.data();
      double* Y = fft(U, other, rows, n, 1);
      std::vector<T> y((size_t)rows * L);
      emu_launch(grid_for((size_t)rows * L), BLOCK, K<T>::take, (const double*)Y, y.data(),
                 (unsigned long long)0, rows, n, offset, L);
      save(dir, y);
      return 0;
    }
    auto gy = load<T>(dir, "gy", (size_t)rows * L);
    std::vector<T> out((size_t)rows * L + (size_t)D * Kl), part((size_t)rows * Kl);
    double* G = forward_rows(gy.data(), x1, t1, rows, L, n, 0);
    // dk[j] = sum_b (dy_b * reverse(u_b))[j + L - 1 - offset] (the lag wraps: offset may be >= L).
    double* UR = forward_rows(u.data(), x3, t3, rows, L, n, 1);
    emu_launch(grid_for((size_t)rows * n), BLOCK, genolm_fft_mul, UR, (const double*)G, rows, rows,
               n);
    double* other = UR == x3.data() ? t3.data() : x3.data();
    double* P = fft(UR, other, rows, n, 1);
    emu_launch(grid_for((size_t)rows * Kl), BLOCK, K<T>::take, (const double*)P, part.data(),
               (unsigned long long)0, rows, n, (n + L - 1 - offset) % n, Kl);
    emu_launch(grid_for((size_t)D * Kl), BLOCK, K<T>::sum_batch, (const T*)part.data(), out.data(),
               (unsigned long long)rows * L, B, D, Kl);
    // du[s] = (dy * reverse(k))[s + K - 1 - offset].
    double* KR = forward_rows(k.data(), x2, t2, D, Kl, n, 1);
    emu_launch(grid_for((size_t)rows * n), BLOCK, genolm_fft_mul, G, (const double*)KR, rows, D, n);
    other = G == x1.data() ? t1.data() : x1.data();
    double* DU = fft(G, other, rows, n, 1);
    emu_launch(grid_for((size_t)rows * L), BLOCK, K<T>::take, (const double*)DU, out.data(),
               (unsigned long long)0, rows, n, Kl - 1 - offset, L);
    save(dir, out);
    return 0;
  }
  return 2;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: driver OP f32|f64 DIR DIMS...\n");
    return 2;
  }
  std::string op = argv[1], dtype = argv[2], dir = argv[3];
  int rc = dtype == "f32" ? run<float>(op, dir, argc - 4, argv + 4)
                          : run<double>(op, dir, argc - 4, argv + 4);
  if (rc != 0) std::fprintf(stderr, "driver: bad arguments for %s\n", op.c_str());
  return rc;
}
