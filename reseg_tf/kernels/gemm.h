// gemm.h: small single-threaded GEMM, C[m, n] (+)= A[m, k] * B[k, n], for the GRU
// recurrence in gru_sweep.cc (h @ w_h and dgates @ w_h^T, one time step per call).
// B is a weight matrix packed once (PackedB) and shared read-only by all threads;
// A and C are the caller's row-major fp32 matrices. Header-only, C++17, x86-64.
//
// Paths (chosen at Pack time from Cpu(); every ISA-specific function carries its own
// __attribute__((target(...))), so the header compiles with any -m flags and one binary
// runs on CPUs with or without AVX-512 / AMX):
//
//  fp32, "avx512": register-blocked micro-kernel, 8 rows x 48 columns of zmm accumulators
//    (24 registers). B is packed in column panels of 48 (last panel 16/32/48 wide, zero
//    padded) stored k-major, so the inner loop reads 3 contiguous vectors of B per k and
//    broadcasts one A element per row; C edges use masked loads/stores.
//  fp32, "avx2": the same scheme with ymm, 6 rows x 16 columns (12 of 16 registers).
//  fp32, "scalar": plain loops over the same panel layout (panels of 16, no padding).
//  bf16, "amx": B converted to bf16 in the VNNI pair layout that TDPBF16PS expects, one
//    1 KB tile per 16 columns x 32 k (k padded to 32, n to 16, with zeros). All of A is
//    rounded to bf16 into a per-thread buffer, rows padded to 16 with zeros; each 2x2
//    block of 16x16 C tiles uses all 8 tile registers (4 C, 2 A, 2 B). Whole C tiles are
//    loaded/stored in place; edge tiles go through a 16x16 scratch. With k ~ 100 each C
//    tile gets only a few dot products, so moving C and A, not TDPBF16PS, sets the speed.
//  bf16, "avx512_bf16": VDPBF16PS micro-kernel (8 rows x 32 columns), B in panels of 32
//    columns of k pairs, A rounded to bf16 pairs in a per-thread buffer. Chosen only
//    without AMX (e.g. AMD Zen 4); on Intel cores with AMX it is slower than "avx512"
//    because VDPBF16PS issues at half the zmm FMA rate there.
//  bf16 on a CPU with neither: the fp32 path of that CPU run on bf16-rounded B and A
//    (A rounded per row block into a per-thread buffer), so every CPU computes products of
//    bf16-rounded inputs accumulated in fp32; results differ between paths only by fp32
//    summation order.
// AccumulateOuterProductsBf16 (AMX only) is the GRU's dw_h += h_prev^T @ dgates over a
// step's lines: a GEMM whose A and B are both repacked per call (A transposed).
// Rounding to bf16 is round-to-nearest-even everywhere. The hardware conversions (and the
// bf16 dot-product instructions) treat bf16 denormals as zero; the software rounding of the
// fallback keeps them. This only matters for |x| < ~1e-38.
//
// Thread-safety: Gemm may run concurrently on one PackedB. Per-thread scratch is
// thread_local. The AMX tile configuration is per thread and is loaded at the start of
// every AMX Gemm call (another library may have loaded a different one in this thread)
// and released at its end.
#ifndef RESEG_TF_KERNELS_GEMM_H_
#define RESEG_TF_KERNELS_GEMM_H_

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <vector>

namespace reseg_kernels {

// ----------------------------------------------------------------------------------------
// CPU features.

struct CpuFeatures {
  bool avx2_fma = false;
  bool avx512f = false;
  bool avx512_bf16 = false;  // AVX512-BF16 with AVX512F+BW (VDPBF16PS, VCVTNE2PS2BF16).
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16, OS state enabled and permission granted.
};

namespace internal {

inline uint64_t ReadXcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

inline CpuFeatures DetectCpu() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = ReadXcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;            // XMM, YMM state.
  const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;  // + opmask, ZMM_Hi256, Hi16_ZMM.
  const bool os_tile = (xcr0 & 0x60000) == 0x60000;     // XTILECFG, XTILEDATA.
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512bw = b & (1u << 30);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  unsigned a1, b1, c1, d1;
  __cpuid_count(7, 1, a1, b1, c1, d1);
  const bool avx512bf16 = a1 & (1u << 5);
  f.avx2_fma = os_ymm && avx2 && fma;
  f.avx512f = f.avx2_fma && os_zmm && avx512f;
  f.avx512_bf16 = f.avx512f && avx512bw && avx512bf16;
  if (f.avx512_bf16 && amx_tile && amx_bf16 && os_tile) {
    // Linux only hands out the 8 KB tile-data state to processes that ask for it; without
    // this, the first tile instruction raises SIGILL.
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    f.amx_bf16 = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }
  return f;
}

}  // namespace internal

// Detected once per process (thread-safe static initialization).
inline const CpuFeatures& Cpu() {
  static const CpuFeatures features = internal::DetectCpu();
  return features;
}

enum class Precision { kFloat32, kBfloat16 };

// The kernel families. kScalar/kAvx2/kAvx512 serve both precisions (for kBfloat16 on
// bf16-rounded inputs); kAvx512Bf16 and kAmx serve only kBfloat16.
enum class Path { kScalar, kAvx2, kAvx512, kAvx512Bf16, kAmx };

inline bool PathAvailable(Path path, Precision precision) {
  const CpuFeatures& cpu = Cpu();
  switch (path) {
    case Path::kScalar: return true;
    case Path::kAvx2: return cpu.avx2_fma;
    case Path::kAvx512: return cpu.avx512f;
    case Path::kAvx512Bf16: return precision == Precision::kBfloat16 && cpu.avx512_bf16;
    case Path::kAmx: return precision == Precision::kBfloat16 && cpu.amx_bf16;
  }
  return false;
}

// The path Pack picks for a precision on this CPU.
inline Path DefaultPath(Precision precision) {
  const CpuFeatures& cpu = Cpu();
  if (precision == Precision::kBfloat16) {
    if (cpu.amx_bf16) return Path::kAmx;
    if (cpu.avx512_bf16) return Path::kAvx512Bf16;
  }
  if (cpu.avx512f) return Path::kAvx512;
  if (cpu.avx2_fma) return Path::kAvx2;
  return Path::kScalar;
}

inline const char* PathName(Path path, Precision precision) {
  const bool bf16 = precision == Precision::kBfloat16;
  switch (path) {
    case Path::kScalar: return bf16 ? "scalar(bf16-rounded)" : "scalar";
    case Path::kAvx2: return bf16 ? "avx2(bf16-rounded)" : "avx2";
    case Path::kAvx512: return bf16 ? "avx512(bf16-rounded)" : "avx512";
    case Path::kAvx512Bf16: return "avx512_bf16";
    case Path::kAmx: return "amx";
  }
  return "?";
}

// The path a Precision actually uses on this CPU (for logs and benchmarks).
inline const char* PathName(Precision precision) {
  return PathName(DefaultPath(precision), precision);
}

// ----------------------------------------------------------------------------------------
// bf16 helpers.

// fp32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t FloatToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float Bf16ToFloat(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// fp32 rounded to the nearest bf16 value, kept as fp32.
inline float RoundToBf16(float x) { return Bf16ToFloat(FloatToBf16(x)); }

namespace internal {

// 64-byte aligned, zero-initialized, copyable byte buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { Reset(bytes); }
  AlignedBuffer(const AlignedBuffer& o) {
    Reset(o.bytes_);
    if (bytes_) std::memcpy(data_, o.data_, bytes_);
  }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), bytes_(o.bytes_) {
    o.data_ = nullptr;
    o.bytes_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer o) noexcept {
    std::swap(data_, o.data_);
    std::swap(bytes_, o.bytes_);
    return *this;
  }
  ~AlignedBuffer() { Free(); }

  // Resizes to `bytes` (contents not kept) and zero-fills.
  void Reset(size_t bytes) {
    if (bytes != bytes_) {
      Free();
      if (bytes) data_ = static_cast<char*>(::operator new(bytes, std::align_val_t(64)));
      bytes_ = bytes;
    }
    if (bytes_) std::memset(data_, 0, bytes_);
  }
  template <typename T>
  T* as() { return reinterpret_cast<T*>(data_); }
  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data_); }

 private:
  void Free() {
    if (data_) ::operator delete(data_, std::align_val_t(64));
    data_ = nullptr;
  }
  char* data_ = nullptr;
  size_t bytes_ = 0;
};

// Per-thread scratch that only grows; one instance per use site and thread.
template <typename T, int kTag>
inline T* ThreadScratch(size_t count) {
  struct Scratch {
    T* data = nullptr;
    size_t count = 0;
    ~Scratch() { ::operator delete(data, std::align_val_t(64)); }
  };
  static thread_local Scratch s;
  if (s.count < count) {
    ::operator delete(s.data, std::align_val_t(64));
    s.data = static_cast<T*>(::operator new(count * sizeof(T), std::align_val_t(64)));
    s.count = count;
  }
  return s.data;
}

// The mask of the first min(left, 16) of 16 lanes (none when left <= 0).
inline __mmask16 TailMask16(int left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << std::max(left, 0)) - 1);
}

// Geometry of the fp32 panel layouts.
struct Fp32Layout {
  int nr;   // Full panel width.
  int vec;  // Tail panel width is rounded up to a multiple of this.
};
inline Fp32Layout LayoutFor(Path path) {
  switch (path) {
    case Path::kAvx512: return {48, 16};
    case Path::kAvx2: return {16, 8};
    default: return {16, 1};
  }
}

constexpr int kAvx512Mr = 8;       // Rows per fp32 AVX-512 micro-tile.
constexpr int kAvx512Nv = 3;       // zmm vectors (of 16 columns) per fp32 panel.
constexpr int kAvx2Mr = 6;         // Rows per AVX2 micro-tile.
constexpr int kAvx2Nv = 2;         // ymm vectors (of 8 columns) per AVX2 panel.
constexpr int kScalarMr = 4;       // Rows per scalar micro-tile.
constexpr int kBf16Mr = 8;         // Rows per VDPBF16PS micro-tile.
constexpr int kBf16Nv = 2;         // zmm vectors per VDPBF16PS panel (32 columns).
constexpr int kAmxBlockRows = 64;  // Rows per AMX block (4 row tiles).

}  // namespace internal

// ----------------------------------------------------------------------------------------
// Packed B.

class PackedB {
 public:
  // B is [k, n] row-major with leading dimension ldb; if transposed, the source is
  // X [n, k] row-major (leading dimension ldb) and B = X^T. Uses DefaultPath(precision).
  void Pack(const float* src, int k, int n, int ldb, bool transposed, Precision precision) {
    Pack(src, k, n, ldb, transposed, precision, DefaultPath(precision));
  }
  // Same with an explicit path (tests, benchmarks). Throws std::invalid_argument if the
  // path is not available on this CPU for this precision.
  void Pack(const float* src, int k, int n, int ldb, bool transposed, Precision precision,
            Path path);

  int k() const { return k_; }
  int n() const { return n_; }
  Precision precision() const { return precision_; }
  Path path() const { return path_; }
  const char* path_name() const { return PathName(path_, precision_); }

  // Layout details, used by the kernels.
  int panel_width() const { return nr_; }  // fp32 / avx512_bf16 panels.
  int k_padded() const { return kp_; }     // k as stored: k, even k, or k rounded to 32.
  const float* f32() const { return buf_.as<float>(); }
  const uint16_t* bf16() const { return buf_.as<uint16_t>(); }

 private:
  int k_ = 0, n_ = 0, nr_ = 0, kp_ = 0;
  Precision precision_ = Precision::kFloat32;
  Path path_ = Path::kScalar;
  internal::AlignedBuffer buf_;
};

inline void PackedB::Pack(const float* src, int k, int n, int ldb, bool transposed,
                          Precision precision, Path path) {
  if (!PathAvailable(path, precision))
    throw std::invalid_argument("reseg_kernels::PackedB::Pack: path not available");
  if (k < 0 || n < 0) throw std::invalid_argument("reseg_kernels::PackedB::Pack: bad size");
  k_ = k;
  n_ = n;
  precision_ = precision;
  path_ = path;
  const bool bf16 = precision == Precision::kBfloat16;
  auto at = [&](int kk, int j) -> float {
    return transposed ? src[size_t(j) * ldb + kk] : src[size_t(kk) * ldb + j];
  };
  if (path == Path::kAmx) {
    // Tile (column block jb, k block kb) at ((jb * KB) + kb) * 512 bf16: 16 rows of k
    // pairs, each row 16 columns x {B[2p][j], B[2p+1][j]}, which is what TDPBF16PS reads
    // as its second source. Padding (k to 32, n to 16) is zero.
    nr_ = 16;
    kp_ = (k + 31) / 32 * 32;
    const int kb_count = kp_ / 32, nb_count = (n + 15) / 16;
    buf_.Reset(size_t(nb_count) * kb_count * 512 * sizeof(uint16_t));
    uint16_t* dst = buf_.as<uint16_t>();
    for (int jb = 0; jb < nb_count; ++jb)
      for (int kb = 0; kb < kb_count; ++kb) {
        uint16_t* tile = dst + (size_t(jb) * kb_count + kb) * 512;
        for (int p = 0; p < 16; ++p)
          for (int jj = 0; jj < 16; ++jj)
            for (int h = 0; h < 2; ++h) {
              const int kk = kb * 32 + 2 * p + h, j = jb * 16 + jj;
              if (kk < k && j < n) tile[p * 32 + jj * 2 + h] = FloatToBf16(at(kk, j));
            }
      }
    return;
  }
  if (path == Path::kAvx512Bf16) {
    // Panels of nr columns; panel starting at column j0 at offset j0 * kp bf16. Within a
    // panel, for each k pair p: nr columns x {B[2p][j], B[2p+1][j]} (VDPBF16PS pairs).
    nr_ = 16 * internal::kBf16Nv;
    kp_ = (k + 1) / 2 * 2;
    const int n_pad = (n + 15) / 16 * 16;
    buf_.Reset(size_t(n_pad) * kp_ * sizeof(uint16_t));
    uint16_t* dst = buf_.as<uint16_t>();
    for (int j0 = 0; j0 < n; j0 += nr_) {
      const int w = std::min(nr_, n_pad - j0);
      uint16_t* panel = dst + size_t(j0) * kp_;
      for (int p = 0; p < kp_ / 2; ++p)
        for (int jj = 0; jj < w; ++jj)
          for (int h = 0; h < 2; ++h) {
            const int kk = 2 * p + h, j = j0 + jj;
            if (kk < k && j < n) panel[(size_t(p) * w + jj) * 2 + h] = FloatToBf16(at(kk, j));
          }
    }
    return;
  }
  // fp32 panels: full panels of nr columns, then one tail panel of the remaining columns
  // rounded up to the vector width; panel starting at column j0 at offset j0 * k floats,
  // stored k-major (B[kk][j0 .. j0 + w) contiguous), so a micro-kernel streams it.
  const internal::Fp32Layout layout = internal::LayoutFor(path);
  nr_ = layout.nr;
  kp_ = k;
  const int n_pad = (n + layout.vec - 1) / layout.vec * layout.vec;
  buf_.Reset(size_t(n_pad) * k * sizeof(float));
  float* dst = buf_.as<float>();
  for (int j0 = 0; j0 < n; j0 += nr_) {
    const int w = std::min(nr_, n_pad - j0);
    float* panel = dst + size_t(j0) * k;
    for (int kk = 0; kk < k; ++kk)
      for (int jj = 0; jj < w && j0 + jj < n; ++jj) {
        const float v = at(kk, j0 + jj);
        panel[size_t(kk) * w + jj] = bf16 ? RoundToBf16(v) : v;
      }
  }
}

namespace internal {

// A rows rounded to bf16 (kept as fp32) for the fp32 kernels' bf16 mode: rows x k into
// dst with leading dimension k. Plain loops; the compiler vectorizes them.
inline void RoundRowsToBf16(int rows, int k, const float* a, int lda, float* dst) {
  for (int r = 0; r < rows; ++r) {
    const float* src = a + size_t(r) * lda;
    float* out = dst + size_t(r) * k;
    for (int kk = 0; kk < k; ++kk) out[kk] = RoundToBf16(src[kk]);
  }
}

// ----------------------------------------------------------------------------------------
// fp32 scalar.

template <int MR>
inline void MicroScalar(int k, const float* a, int lda, const float* b, int w, int cols,
                        float* c, int ldc, bool accumulate) {
  float acc[MR][16] = {};
  for (int kk = 0; kk < k; ++kk) {
    const float* bk = b + size_t(kk) * w;
    for (int r = 0; r < MR; ++r) {
      const float av = a[size_t(r) * lda + kk];
      for (int j = 0; j < cols; ++j) acc[r][j] += av * bk[j];
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < cols; ++j)
      c[size_t(r) * ldc + j] = accumulate ? c[size_t(r) * ldc + j] + acc[r][j] : acc[r][j];
}

// Runs fn(i0, rows, a_tile, lda_tile) on A in tiles of kMr rows; in bf16 mode
// each tile is first rounded to bf16 (kept as fp32) in thread scratch slot kSlot,
// so that every fp32 kernel computes bf16-rounded products there.
template <int kMr, int kSlot, typename Fn>
inline void ForEachRowTile(int m, const float* a, int lda, const PackedB& b, const Fn& fn) {
  const int k = b.k();
  const bool round_a = b.precision() == Precision::kBfloat16;
  float* abuf = round_a ? ThreadScratch<float, kSlot>(size_t(kMr) * std::max(k, 1)) : nullptr;
  for (int i0 = 0; i0 < m; i0 += kMr) {
    const int rows = std::min(kMr, m - i0);
    if (round_a) {
      RoundRowsToBf16(rows, k, a + size_t(i0) * lda, lda, abuf);
      fn(i0, rows, abuf, k);
    } else {
      fn(i0, rows, a + size_t(i0) * lda, lda);
    }
  }
}

inline void GemmScalar(int m, const float* a, int lda, const PackedB& b, float* c, int ldc,
                       bool accumulate) {
  const int k = b.k(), n = b.n(), nr = b.panel_width();
  ForEachRowTile<kScalarMr, 0>(m, a, lda, b, [&](int i0, int rows, const float* ab, int ald) {
    for (int j0 = 0; j0 < n; j0 += nr) {
      const int w = std::min(nr, n - j0);  // vec == 1: the tail panel is exactly w wide.
      const float* panel = b.f32() + size_t(j0) * k;
      float* cb = c + size_t(i0) * ldc + j0;
      switch (rows) {
        case 4: MicroScalar<4>(k, ab, ald, panel, w, w, cb, ldc, accumulate); break;
        case 3: MicroScalar<3>(k, ab, ald, panel, w, w, cb, ldc, accumulate); break;
        case 2: MicroScalar<2>(k, ab, ald, panel, w, w, cb, ldc, accumulate); break;
        default: MicroScalar<1>(k, ab, ald, panel, w, w, cb, ldc, accumulate); break;
      }
    }
  });
}

// ----------------------------------------------------------------------------------------
// fp32 AVX2 + FMA: MR rows x NV ymm of accumulators; the last vector's columns are masked.

#define RESEG_AVX2 __attribute__((target("avx2,fma")))

RESEG_AVX2 inline __m256i Avx2TailMask(int cols) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR, int NV>
RESEG_AVX2 inline void MicroAvx2(int k, const float* a, int lda, const float* b, float* c,
                                 int ldc, int last_cols, bool accumulate) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  for (int kk = 0; kk < k; ++kk) {
    __m256 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + v * 8);
    b += NV * 8;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + size_t(r) * lda + kk);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  const __m256i mask = Avx2TailMask(last_cols);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + size_t(r) * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) {
      if (accumulate) acc[r][v] = _mm256_add_ps(acc[r][v], _mm256_loadu_ps(cr + v * 8));
      _mm256_storeu_ps(cr + v * 8, acc[r][v]);
    }
    float* cl = cr + (NV - 1) * 8;
    if (accumulate) acc[r][NV - 1] = _mm256_add_ps(acc[r][NV - 1], _mm256_maskload_ps(cl, mask));
    _mm256_maskstore_ps(cl, mask, acc[r][NV - 1]);
  }
}

using Fp32MicroFn = void (*)(int, const float*, int, const float*, float*, int, int, bool);

// The fp32 driver of the AVX2 and AVX-512 paths: A in tiles of kMr rows, B's
// panels in vectors of kLanes columns, each tile handed to the micro-kernel of its
// rows and vectors from `table`.
template <int kMr, int kNv, int kLanes, int kSlot>
inline void GemmFp32Tiles(const Fp32MicroFn (&table)[kMr][kNv], int m, const float* a, int lda,
                          const PackedB& b, float* c, int ldc, bool accumulate) {
  const int k = b.k(), n = b.n(), nr = b.panel_width();
  ForEachRowTile<kMr, kSlot>(m, a, lda, b, [&](int i0, int rows, const float* ab, int ald) {
    for (int j0 = 0; j0 < n; j0 += nr) {
      const int cols = std::min(nr, n - j0);
      const int nv = (cols + kLanes - 1) / kLanes;
      table[rows - 1][nv - 1](k, ab, ald, b.f32() + size_t(j0) * k, c + size_t(i0) * ldc + j0,
                              ldc, cols - kLanes * (nv - 1), accumulate);
    }
  });
}

template <int MR, int NV>
constexpr Fp32MicroFn Avx2Fn() { return &MicroAvx2<MR, NV>; }

RESEG_AVX2 inline void GemmAvx2(int m, const float* a, int lda, const PackedB& b, float* c,
                                int ldc, bool accumulate) {
  static constexpr Fp32MicroFn kTable[kAvx2Mr][kAvx2Nv] = {
      {Avx2Fn<1, 1>(), Avx2Fn<1, 2>()}, {Avx2Fn<2, 1>(), Avx2Fn<2, 2>()},
      {Avx2Fn<3, 1>(), Avx2Fn<3, 2>()}, {Avx2Fn<4, 1>(), Avx2Fn<4, 2>()},
      {Avx2Fn<5, 1>(), Avx2Fn<5, 2>()}, {Avx2Fn<6, 1>(), Avx2Fn<6, 2>()}};
  GemmFp32Tiles<kAvx2Mr, kAvx2Nv, 8, 1>(kTable, m, a, lda, b, c, ldc, accumulate);
}

// ----------------------------------------------------------------------------------------
// fp32 AVX-512F: MR rows x NV zmm of accumulators. 8 x 3 = 24 accumulators leave room for
// the 3 B vectors and the broadcast; 24 independent FMA chains cover the 4-cycle latency
// on 2 FMA ports. Per k: 3 B loads + 8 broadcasts for 24 FMAs keeps the loads off the
// critical path.

#define RESEG_AVX512 __attribute__((target("avx512f")))

// Writes (or adds) an MR x NV-vector tile of zmm accumulators to C; the last
// vector of each row holds `last_cols` columns. Shared by the fp32 and the
// AVX512-BF16 micro-kernels, whose accumulators are both fp32.
template <int MR, int NV>
RESEG_AVX512 inline void StoreTileAvx512(__m512 (&acc)[MR][NV], float* c, int ldc,
                                         int last_cols, bool accumulate) {
  const __mmask16 mask = TailMask16(last_cols);
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    float* cr = c + size_t(r) * ldc;
#pragma GCC unroll 4
    for (int v = 0; v < NV - 1; ++v) {
      if (accumulate) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_loadu_ps(cr + v * 16));
      _mm512_storeu_ps(cr + v * 16, acc[r][v]);
    }
    float* cl = cr + (NV - 1) * 16;
    if (accumulate)
      acc[r][NV - 1] = _mm512_add_ps(acc[r][NV - 1], _mm512_maskz_loadu_ps(mask, cl));
    _mm512_mask_storeu_ps(cl, mask, acc[r][NV - 1]);
  }
}

template <int MR, int NV>
RESEG_AVX512 inline void MicroAvx512(int k, const float* a, int lda, const float* b, float* c,
                                     int ldc, int last_cols, bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const float* ar[MR];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) ar[r] = a + size_t(r) * lda;
#pragma GCC unroll 2
  for (int kk = 0; kk < k; ++kk) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + v * 16);
    b += NV * 16;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(ar[r][kk]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
  StoreTileAvx512<MR, NV>(acc, c, ldc, last_cols, accumulate);
}

template <int MR, int NV>
constexpr Fp32MicroFn Avx512Fn() { return &MicroAvx512<MR, NV>; }

RESEG_AVX512 inline void GemmAvx512(int m, const float* a, int lda, const PackedB& b,
                                    float* c, int ldc, bool accumulate) {
  static_assert(kAvx512Mr == 8 && kAvx512Nv == 3, "update the table");
  static constexpr Fp32MicroFn kTable[kAvx512Mr][kAvx512Nv] = {
      {Avx512Fn<1, 1>(), Avx512Fn<1, 2>(), Avx512Fn<1, 3>()},
      {Avx512Fn<2, 1>(), Avx512Fn<2, 2>(), Avx512Fn<2, 3>()},
      {Avx512Fn<3, 1>(), Avx512Fn<3, 2>(), Avx512Fn<3, 3>()},
      {Avx512Fn<4, 1>(), Avx512Fn<4, 2>(), Avx512Fn<4, 3>()},
      {Avx512Fn<5, 1>(), Avx512Fn<5, 2>(), Avx512Fn<5, 3>()},
      {Avx512Fn<6, 1>(), Avx512Fn<6, 2>(), Avx512Fn<6, 3>()},
      {Avx512Fn<7, 1>(), Avx512Fn<7, 2>(), Avx512Fn<7, 3>()},
      {Avx512Fn<8, 1>(), Avx512Fn<8, 2>(), Avx512Fn<8, 3>()}};
  GemmFp32Tiles<kAvx512Mr, kAvx512Nv, 16, 2>(kTable, m, a, lda, b, c, ldc, accumulate);
}

// ----------------------------------------------------------------------------------------
// bf16 AVX512-BF16: VDPBF16PS adds a[2p] * b[2p] + a[2p+1] * b[2p+1] into each fp32 lane,
// so A is held as bf16 pairs (one 32-bit broadcast per row and k pair) and B as column
// vectors of pairs.

#define RESEG_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

// rows x k of A to bf16, row stride kp (even), zero padded from k to kp.
RESEG_AVX512BF16 inline void ConvertRowsBf16(int rows, int k, const float* a, int lda,
                                             int kp, uint16_t* dst) {
  for (int r = 0; r < rows; ++r) {
    const float* src = a + size_t(r) * lda;
    uint16_t* out = dst + size_t(r) * kp;
    int kk = 0;
    for (; kk + 32 <= k; kk += 32) {
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + kk + 16), _mm512_loadu_ps(src + kk));
      _mm512_storeu_si512(out + kk, (__m512i)v);
    }
    if (kk < kp) {
      // Tail: masked loads read only columns < k; the rest (up to kp) becomes zero.
      const int left = k - kk;
      const __mmask16 m0 = TailMask16(left), m1 = TailMask16(left - 16);
      const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + kk + 16),
                                             _mm512_maskz_loadu_ps(m0, src + kk));
      const int store = kp - kk;  // <= 32 bf16.
      const __mmask32 ms = store >= 32 ? 0xffffffffu : (1u << store) - 1;
      _mm512_mask_storeu_epi16(out + kk, ms, (__m512i)v);
    }
  }
}

template <int MR, int NV>
RESEG_AVX512BF16 inline void MicroBf16(int pairs, const uint32_t* a, int astride,
                                       const uint16_t* b, float* c, int ldc, int last_cols,
                                       bool accumulate) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int p = 0; p < pairs; ++p) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = (__m512bh)_mm512_load_si512(b + v * 32);
    b += NV * 32;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(a[size_t(r) * astride + p]));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  StoreTileAvx512<MR, NV>(acc, c, ldc, last_cols, accumulate);
}

using Bf16MicroFn = void (*)(int, const uint32_t*, int, const uint16_t*, float*, int, int, bool);

template <int MR, int NV>
constexpr Bf16MicroFn Bf16Fn() { return &MicroBf16<MR, NV>; }

RESEG_AVX512BF16 inline void GemmAvx512Bf16(int m, const float* a, int lda, const PackedB& b,
                                            float* c, int ldc, bool accumulate) {
  static_assert(kBf16Mr == 8 && kBf16Nv == 2, "update the table");
  static constexpr Bf16MicroFn kTable[kBf16Mr][kBf16Nv] = {
      {Bf16Fn<1, 1>(), Bf16Fn<1, 2>()}, {Bf16Fn<2, 1>(), Bf16Fn<2, 2>()},
      {Bf16Fn<3, 1>(), Bf16Fn<3, 2>()}, {Bf16Fn<4, 1>(), Bf16Fn<4, 2>()},
      {Bf16Fn<5, 1>(), Bf16Fn<5, 2>()}, {Bf16Fn<6, 1>(), Bf16Fn<6, 2>()},
      {Bf16Fn<7, 1>(), Bf16Fn<7, 2>()}, {Bf16Fn<8, 1>(), Bf16Fn<8, 2>()}};
  const int k = b.k(), n = b.n(), nr = b.panel_width(), kp = b.k_padded();
  uint16_t* abuf = ThreadScratch<uint16_t, 3>(size_t(kBf16Mr) * std::max(kp, 2));
  for (int i0 = 0; i0 < m; i0 += kBf16Mr) {
    const int rows = std::min(kBf16Mr, m - i0);
    ConvertRowsBf16(rows, k, a + size_t(i0) * lda, lda, kp, abuf);
    for (int j0 = 0; j0 < n; j0 += nr) {
      const int cols = std::min(nr, n - j0);
      const int nv = (cols + 15) / 16;
      kTable[rows - 1][nv - 1](kp / 2, reinterpret_cast<const uint32_t*>(abuf), kp / 2,
                               b.bf16() + size_t(j0) * kp, c + size_t(i0) * ldc + j0, ldc,
                               cols - 16 * (nv - 1), accumulate);
    }
  }
}

// ----------------------------------------------------------------------------------------
// bf16 AMX. Tile registers: C tiles 0..3 (C[r][c] in tmm(2r + c)), A tiles 4, 5, B tiles
// 6, 7; all 16 rows x 64 bytes (16 fp32, 32 bf16, or 16 k pairs x 16 columns). The tile
// intrinsics paste their register number into the asm text, so each one is spelled out.

#define RESEG_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

struct alignas(64) AmxTileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

template <int T>
RESEG_AMX inline void AmxLoadC(const float* p, int stride_bytes) {
  if constexpr (T == 0) _tile_loadd(0, p, stride_bytes);
  if constexpr (T == 1) _tile_loadd(1, p, stride_bytes);
  if constexpr (T == 2) _tile_loadd(2, p, stride_bytes);
  if constexpr (T == 3) _tile_loadd(3, p, stride_bytes);
}
template <int T>
RESEG_AMX inline void AmxZeroC() {
  if constexpr (T == 0) _tile_zero(0);
  if constexpr (T == 1) _tile_zero(1);
  if constexpr (T == 2) _tile_zero(2);
  if constexpr (T == 3) _tile_zero(3);
}
template <int T>
RESEG_AMX inline void AmxStoreC(float* p, int stride_bytes) {
  if constexpr (T == 0) _tile_stored(0, p, stride_bytes);
  if constexpr (T == 1) _tile_stored(1, p, stride_bytes);
  if constexpr (T == 2) _tile_stored(2, p, stride_bytes);
  if constexpr (T == 3) _tile_stored(3, p, stride_bytes);
}

// C tile T covers C rows [row0, row0 + 16) x columns [col0, col0 + 16) of this call's C;
// only rows < m and columns < n exist.
struct AmxCTile {
  float* c;      // &C[row0][col0]
  int rows;      // valid rows (1..16)
  int cols;      // valid columns (1..16)
};

template <int T>
RESEG_AMX inline void AmxInitC(const AmxCTile& t, int ldc, bool accumulate) {
  if (t.rows == 16 && t.cols == 16) {
    // Whole tile: accumulate in place, the tile starts from C. Without accumulate the tile
    // is still loaded (then zeroed): tile stores to lines not in L1 are much slower than
    // a tile load that brings them in, which the later in-place store then hits.
    AmxLoadC<T>(t.c, ldc * 4);
    if (!accumulate) AmxZeroC<T>();
  } else {
    AmxZeroC<T>();
  }
}

template <int T>
RESEG_AMX inline void AmxFinishC(const AmxCTile& t, int ldc, bool accumulate, float* scratch) {
  if (t.rows == 16 && t.cols == 16) {
    AmxStoreC<T>(t.c, ldc * 4);
    return;
  }
  // Edge tile: store to scratch, copy the valid part (C was not loaded, so add it here).
  AmxStoreC<T>(scratch, 64);
  const __mmask16 mask = TailMask16(t.cols);
  for (int r = 0; r < t.rows; ++r) {
    __m512 v = _mm512_load_ps(scratch + 16 * r);
    float* cr = t.c + size_t(r) * ldc;
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, cr));
    _mm512_mask_storeu_ps(cr, mask, v);
  }
}

// One block of RT x CT C tiles (RT, CT in {1, 2}) over all k blocks.
//   a: bf16 A buffer at the block's first row, row stride kp (bf16 elements);
//   b: packed B at the block's first column tile; tiles of one column block are kb_count
//      apart (512 bf16 each).
template <int RT, int CT>
RESEG_AMX inline void AmxBlock(const uint16_t* a, int kp, const uint16_t* b, int kb_count,
                               const AmxCTile (&t)[2][2], int ldc, bool accumulate,
                               float* scratch) {
  AmxInitC<0>(t[0][0], ldc, accumulate);
  if constexpr (CT == 2) AmxInitC<1>(t[0][1], ldc, accumulate);
  if constexpr (RT == 2) AmxInitC<2>(t[1][0], ldc, accumulate);
  if constexpr (RT == 2 && CT == 2) AmxInitC<3>(t[1][1], ldc, accumulate);
  const size_t b_stride = size_t(kb_count) * 512;
  for (int kb = 0; kb < kb_count; ++kb) {
    _tile_loadd(4, a + kb * 32, kp * 2);
    if constexpr (RT == 2) _tile_loadd(5, a + size_t(16) * kp + kb * 32, kp * 2);
    _tile_loadd(6, b + size_t(kb) * 512, 64);
    if constexpr (CT == 2) _tile_loadd(7, b + b_stride + size_t(kb) * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (CT == 2) _tile_dpbf16ps(1, 4, 7);
    if constexpr (RT == 2) _tile_dpbf16ps(2, 5, 6);
    if constexpr (RT == 2 && CT == 2) _tile_dpbf16ps(3, 5, 7);
  }
  AmxFinishC<0>(t[0][0], ldc, accumulate, scratch);
  if constexpr (CT == 2) AmxFinishC<1>(t[0][1], ldc, accumulate, scratch);
  if constexpr (RT == 2) AmxFinishC<2>(t[1][0], ldc, accumulate, scratch);
  if constexpr (RT == 2 && CT == 2) AmxFinishC<3>(t[1][1], ldc, accumulate, scratch);
}

// Every C tile of C[m, n] (+)= A * B: A as bf16 rows of kp (rows padded to 16 with zeros),
// B packed as PackedB's AMX layout (kb_count = kp / 32 tiles per 16 columns). Loads the
// tile configuration and releases the tiles.
RESEG_AMX inline void AmxGemmTiles(int m, int n, const uint16_t* abuf_all, int kp,
                                   const uint16_t* b, float* c, int ldc, bool accumulate) {
  const int kb_count = kp / 32, nt = (n + 15) / 16;
  AmxTileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette_id = 1;
  for (int i = 0; i < 8; ++i) {
    cfg.colsb[i] = 64;
    cfg.rows[i] = 16;
  }
  _tile_loadconfig(&cfg);
  // Per block of kAmxBlockRows rows, each pair of B column tiles sweeps down the block,
  // so the B tiles stay in L1 while the block's A rows are reused from L1.
  float* scratch = ThreadScratch<float, 5>(256);
  for (int i0 = 0; i0 < m; i0 += kAmxBlockRows) {
    const int mb = std::min(kAmxBlockRows, m - i0);
    const int rt_count = (mb + 15) / 16;
    const uint16_t* abuf = abuf_all + size_t(i0) * kp;
    for (int jt = 0; jt < nt; jt += 2) {
      const int ct = std::min(2, nt - jt);
      const uint16_t* bt = b + size_t(jt) * kb_count * 512;
      for (int it = 0; it < rt_count; it += 2) {
        const int rt = std::min(2, rt_count - it);
        AmxCTile t[2][2];
        for (int r = 0; r < 2; ++r)
          for (int q = 0; q < 2; ++q) {
            const int row0 = (it + r) * 16, col0 = (jt + q) * 16;
            t[r][q].c = c + size_t(i0 + row0) * ldc + col0;
            t[r][q].rows = std::max(0, std::min(16, mb - row0));
            t[r][q].cols = std::max(0, std::min(16, n - col0));
          }
        const uint16_t* at = abuf + size_t(it) * 16 * kp;
        if (rt == 2 && ct == 2)
          AmxBlock<2, 2>(at, kp, bt, kb_count, t, ldc, accumulate, scratch);
        else if (rt == 2)
          AmxBlock<2, 1>(at, kp, bt, kb_count, t, ldc, accumulate, scratch);
        else if (ct == 2)
          AmxBlock<1, 2>(at, kp, bt, kb_count, t, ldc, accumulate, scratch);
        else
          AmxBlock<1, 1>(at, kp, bt, kb_count, t, ldc, accumulate, scratch);
      }
    }
  }
  _tile_release();
}

RESEG_AMX inline void GemmAmx(int m, const float* a, int lda, const PackedB& b, float* c,
                              int ldc, bool accumulate) {
  const int k = b.k(), kp = b.k_padded();
  // All of A is converted to bf16 first (rows padded to a multiple of 16 with zeros, k
  // padded to kp with zeros): ordinary stores interleaved with tile loads slow the tile
  // loads down, so they are kept out of the tile loop.
  const int m_pad = (m + 15) / 16 * 16;
  uint16_t* abuf_all = ThreadScratch<uint16_t, 4>(size_t(m_pad) * std::max(kp, 32));
  ConvertRowsBf16(m, k, a, lda, kp, abuf_all);
  if (m < m_pad)
    std::memset(abuf_all + size_t(m) * kp, 0, size_t(m_pad - m) * kp * sizeof(uint16_t));
  AmxGemmTiles(m, b.n(), abuf_all, kp, b.bf16(), c, ldc, accumulate);
}

// Two rows of 16 floats (masked to `mask`; a null row reads as zeros) as 16 bf16 pairs
// {even[i], odd[i]}: one k pair of 16 columns in the VNNI layout.
RESEG_AMX inline __m512i Bf16Pairs(const float* even, const float* odd, __mmask16 mask) {
  const __m512i interleave = _mm512_set_epi16(
      31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
      23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512 e = even ? _mm512_maskz_loadu_ps(mask, even) : _mm512_setzero_ps();
  const __m512 o = odd ? _mm512_maskz_loadu_ps(mask, odd) : _mm512_setzero_ps();
  return _mm512_permutexvar_epi16(interleave, (__m512i)_mm512_cvtne2ps_pbh(o, e));
}

// r[i] (16 dwords each) := column i of the 16 x 16 dword matrix whose rows are r[0..15].
RESEG_AMX inline void Transpose16x16Dwords(__m512i (&r)[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // s[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i + 3.
  __m512i s[16];
  for (int i = 0; i < 16; i += 4) {
    s[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    s[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    s[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    s[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i u0 = _mm512_shuffle_i32x4(s[j], s[4 + j], 0x44);
    const __m512i u1 = _mm512_shuffle_i32x4(s[j], s[4 + j], 0xEE);
    const __m512i u2 = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0x44);
    const __m512i u3 = _mm512_shuffle_i32x4(s[8 + j], s[12 + j], 0xEE);
    r[j] = _mm512_shuffle_i32x4(u0, u2, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(u0, u2, 0xDD);
    r[8 + j] = _mm512_shuffle_i32x4(u1, u3, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(u1, u3, 0xDD);
  }
}

// dw[units, gates] += hp^T @ dg with hp [n, units] and dg [n, gates] row-major (leading
// dimensions units and gates), dw with leading dimension ldw: the weight gradient of a
// GRU step's h @ w_h, summed over n lines, as one AMX GEMM with k = n. A = hp^T is built
// by converting 32 lines x 16 units to bf16 pairs and transposing them as 16 x 16 dwords
// (each dword a k pair), B = dg is packed in the VNNI pair layout, both per call.
RESEG_AMX inline void OuterProductsAmx(int n, int units, int gates, const float* hp,
                                       const float* dg, float* dw, int ldw) {
  const int kp = (n + 31) / 32 * 32, kb_count = kp / 32;
  const int u_pad = (units + 15) / 16 * 16, nt = (gates + 15) / 16;
  uint16_t* abuf = ThreadScratch<uint16_t, 6>(size_t(u_pad) * kp);
  uint16_t* bbuf = ThreadScratch<uint16_t, 7>(size_t(nt) * kb_count * 512);
  for (int kb = 0; kb < kb_count; ++kb) {
    const int k0 = kb * 32;
    auto row = [&](const float* m, int ld, int k, int col) -> const float* {
      return k < n ? m + size_t(k) * ld + col : nullptr;
    };
    for (int u0 = 0; u0 < u_pad; u0 += 16) {
      const __mmask16 mask = TailMask16(units - u0);
      __m512i r[16];
      for (int p = 0; p < 16; ++p)
        r[p] = Bf16Pairs(row(hp, units, k0 + 2 * p, u0), row(hp, units, k0 + 2 * p + 1, u0), mask);
      Transpose16x16Dwords(r);  // r[i]: the 16 k pairs of unit u0 + i.
      for (int i = 0; i < 16; ++i) _mm512_store_si512(abuf + size_t(u0 + i) * kp + k0, r[i]);
    }
    for (int jb = 0; jb < nt; ++jb) {
      const __mmask16 mask = TailMask16(gates - jb * 16);
      uint16_t* tile = bbuf + (size_t(jb) * kb_count + kb) * 512;
      for (int p = 0; p < 16; ++p)
        _mm512_store_si512(tile + p * 32, Bf16Pairs(row(dg, gates, k0 + 2 * p, jb * 16),
                                                    row(dg, gates, k0 + 2 * p + 1, jb * 16),
                                                    mask));
    }
  }
  AmxGemmTiles(units, gates, abuf, kp, bbuf, dw, ldw, /*accumulate=*/true);
}

}  // namespace internal

// dw[units, gates] += hp^T @ dg over n rows (hp [n, units], dg [n, gates], row-major;
// dw's leading dimension ldw >= gates): products of bf16-rounded inputs accumulated in
// fp32, on AMX tiles. Only where Cpu().amx_bf16; n, units, gates >= 1.
inline void AccumulateOuterProductsBf16(int n, int units, int gates, const float* hp,
                                        const float* dg, float* dw, int ldw) {
  internal::OuterProductsAmx(n, units, gates, hp, dg, dw, ldw);
}

// ----------------------------------------------------------------------------------------
// C[m, n] = A[m, k] * B (or C += A * B when accumulate). A: fp32 row-major, leading
// dimension lda (>= k); C: fp32 row-major, leading dimension ldc (>= n). With a bf16
// PackedB, A is rounded to bf16 (nearest even) on the fly and products accumulate in fp32.
// No alignment needed. Only the m x k / m x n elements are read / written.
inline void Gemm(int m, const float* a, int lda, const PackedB& b, float* c, int ldc,
                 bool accumulate) {
  if (m <= 0 || b.n() <= 0) return;
  switch (b.path()) {
    case Path::kAmx: internal::GemmAmx(m, a, lda, b, c, ldc, accumulate); return;
    case Path::kAvx512Bf16: internal::GemmAvx512Bf16(m, a, lda, b, c, ldc, accumulate); return;
    case Path::kAvx512: internal::GemmAvx512(m, a, lda, b, c, ldc, accumulate); return;
    case Path::kAvx2: internal::GemmAvx2(m, a, lda, b, c, ldc, accumulate); return;
    case Path::kScalar: internal::GemmScalar(m, a, lda, b, c, ldc, accumulate); return;
  }
}

}  // namespace reseg_kernels

#undef RESEG_AVX2
#undef RESEG_AVX512
#undef RESEG_AVX512BF16
#undef RESEG_AMX

#endif  // RESEG_TF_KERNELS_GEMM_H_
