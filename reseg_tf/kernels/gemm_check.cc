// gemm_check: checks every gemm.h path this CPU can run against a double-precision
// reference, and with --bench times them at the GRU step shapes.
//
//   g++ -std=c++17 -O3 -mavx2 -mfma -mf16c reseg_tf/kernels/gemm_check.cc -o /tmp/gemm_check
//   /tmp/gemm_check            # correctness, exit status 1 on any failure
//   /tmp/gemm_check --bench    # microseconds per call and GFLOP/s, single thread
//
// Correctness: A, the B source and C each end exactly at a PROT_NONE page, so any read or
// write past their last element faults; padding between rows (lda > k, ldb, ldc > n) holds
// NaN in the inputs (a read of it poisons the result) and a sentinel in C (must survive).
// With accumulate off, C starts as NaN (a read of it poisons the result).
// fp32 paths: |C - ref| <= 1e-5 * (sum_k |a||b| + |C0|). bf16 paths: the same bound
// against a reference computed from bf16-rounded A and B, and 1e-2 against the fp32 one.
#include "gemm.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using reseg_kernels::Gemm;
using reseg_kernels::PackedB;
using reseg_kernels::Path;
using reseg_kernels::PathAvailable;
using reseg_kernels::PathName;
using reseg_kernels::Precision;
using reseg_kernels::RoundToBf16;

// `count` floats ending exactly at an inaccessible page.
class GuardedFloats {
 public:
  explicit GuardedFloats(size_t count) : count_(count) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    const size_t data_bytes = (count * sizeof(float) + page - 1) / page * page;
    bytes_ = data_bytes + page;
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      perror("mmap");
      std::exit(2);
    }
    base_ = static_cast<char*>(p);
    mprotect(base_ + data_bytes, page, PROT_NONE);
    data_ = reinterpret_cast<float*>(base_ + data_bytes) - count;
  }
  ~GuardedFloats() { munmap(base_, bytes_); }
  GuardedFloats(const GuardedFloats&) = delete;
  GuardedFloats& operator=(const GuardedFloats&) = delete;
  float* data() { return data_; }
  size_t size() const { return count_; }

 private:
  char* base_ = nullptr;
  size_t bytes_ = 0;
  float* data_ = nullptr;
  size_t count_ = 0;
};

struct Variant {
  Path path;
  Precision precision;
};

std::vector<Variant> AvailableVariants() {
  std::vector<Variant> v;
  for (Precision prec : {Precision::kFloat32, Precision::kBfloat16})
    for (Path path : {Path::kScalar, Path::kAvx2, Path::kAvx512, Path::kAvx512Bf16, Path::kAmx})
      if (PathAvailable(path, prec)) v.push_back({path, prec});
  return v;
}

struct Stats {
  double max_err = 0;       // vs the reference of the path's own precision.
  double max_err_f32 = 0;   // bf16 paths: vs the fp32-input reference.
  int cases = 0;
  int failures = 0;
  std::string first_failure;
};

// One (k, n) shape's data: B as [k, n] with row padding, and its transpose X [n, k].
struct BData {
  int k, n, ldb_b, ldb_x;
  std::vector<float> b;  // B[kk][j] (dense, for the reference)
};

// Reference products for one (m, k, n): P = A B and S = |A| |B| in double, for fp32 and
// bf16-rounded inputs.
struct Ref {
  std::vector<double> p32, s32, p16, s16;
};

Ref Reference(int m, int k, int n, const std::vector<float>& a, const std::vector<float>& b) {
  Ref r;
  r.p32.assign(size_t(m) * n, 0);
  r.s32.assign(size_t(m) * n, 0);
  r.p16.assign(size_t(m) * n, 0);
  r.s16.assign(size_t(m) * n, 0);
  std::vector<double> b16(b.size());
  for (size_t i = 0; i < b.size(); ++i) b16[i] = RoundToBf16(b[i]);
  for (int i = 0; i < m; ++i)
    for (int kk = 0; kk < k; ++kk) {
      const double av = a[size_t(i) * k + kk], av16 = RoundToBf16(a[size_t(i) * k + kk]);
      const double* bb16 = &b16[size_t(kk) * n];
      const float* bb = &b[size_t(kk) * n];
      double* p32 = &r.p32[size_t(i) * n];
      double* s32 = &r.s32[size_t(i) * n];
      double* p16 = &r.p16[size_t(i) * n];
      double* s16 = &r.s16[size_t(i) * n];
      for (int j = 0; j < n; ++j) {
        p32[j] += av * bb[j];
        s32[j] += std::fabs(av * bb[j]);
        p16[j] += av16 * bb16[j];
        s16[j] += std::fabs(av16 * bb16[j]);
      }
    }
  return r;
}

// One element `got` of C = base + A B (base = C's start, 0 without accumulate) against the
// reference: its error relative to S + |base| for the inputs of the path's precision (bf16:
// bf16-rounded), kept in *worst, and against the fp32-input reference, kept in *worst32
// (NaN counts as infinite). True if within 1e-5, and for bf16 also within 1e-2 of fp32's.
bool CheckElement(float got, double base, const Ref& ref, size_t e, bool bf16, double* worst,
                  double* worst32) {
  const double extra = std::fabs(base);
  const double want = base + (bf16 ? ref.p16[e] : ref.p32[e]);
  const double scale = (bf16 ? ref.s16[e] : ref.s32[e]) + extra + 1e-30;
  const double err = std::fabs(got - want) / scale;
  const double err32 = std::fabs(got - (base + ref.p32[e])) / (ref.s32[e] + extra + 1e-30);
  if (!(err <= *worst)) *worst = std::isnan(err) ? INFINITY : err;
  if (!(err32 <= *worst32)) *worst32 = std::isnan(err32) ? INFINITY : err32;
  return err <= 1e-5 && (!bf16 || err32 <= 1e-2);
}

constexpr float kSentinel = 12345.5f;

// The case being run, reported if it touches a guard page.
char g_current_case[256] = "";

void OnSegv(int) {
  const char msg[] = "\nFAIL: out-of-bounds access (guard page) in ";
  ssize_t ignored = write(2, msg, sizeof(msg) - 1);
  ignored = write(2, g_current_case, strlen(g_current_case));
  ignored = write(2, "\n", 1);
  (void)ignored;
  _exit(1);
}

// AccumulateOuterProductsBf16 (AMX only): dw [units, gates] += hp^T @ dg over n rows, checked
// as a bf16 GEMM (CheckElement) of A = hp^T and B = dg accumulating onto dw; hp and dg end
// at guard pages, dw's row padding must keep its sentinel. Returns the number of failing
// cases (0 without AMX, which it says).
int CheckOuterProducts(std::mt19937& rng) {
  if (!reseg_kernels::Cpu().amx_bf16) {
    std::printf("amx outer products: no AMX on this CPU, not checked\n");
    return 0;
  }
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  const int ns[] = {1, 2, 31, 32, 33, 64, 225, 300};
  const int shapes[][2] = {{100, 300}, {1, 3}, {15, 45}, {16, 48}, {17, 51}, {33, 20}};
  Stats st;
  for (const int n : ns)
    for (const auto& shape : shapes) {
      const int units = shape[0], gates = shape[1], ldw = gates + (n % 2) * 5;
      GuardedFloats hp(size_t(n) * units), dg(size_t(n) * gates);
      for (size_t i = 0; i < hp.size(); ++i) hp.data()[i] = uni(rng);
      for (size_t i = 0; i < dg.size(); ++i) dg.data()[i] = uni(rng);
      std::vector<float> hp_t(size_t(units) * n);
      for (int k = 0; k < n; ++k)
        for (int u = 0; u < units; ++u) hp_t[size_t(u) * n + k] = hp.data()[size_t(k) * units + u];
      const std::vector<float> dg_dense(dg.data(), dg.data() + dg.size());
      const Ref ref = Reference(units, n, gates, hp_t, dg_dense);
      std::vector<float> dw(size_t(units) * ldw, kSentinel), dw0(size_t(units) * gates);
      for (int u = 0; u < units; ++u)
        for (int j = 0; j < gates; ++j) dw[size_t(u) * ldw + j] = dw0[size_t(u) * gates + j] = uni(rng);
      std::snprintf(g_current_case, sizeof(g_current_case), "amx outer products: n=%d units=%d gates=%d",
                    n, units, gates);
      reseg_kernels::AccumulateOuterProductsBf16(n, units, gates, hp.data(), dg.data(), dw.data(), ldw);
      bool ok = true;
      for (int u = 0; u < units; ++u)
        for (int j = 0; j < ldw; ++j) {
          const float got = dw[size_t(u) * ldw + j];
          if (j >= gates) {
            ok &= std::memcmp(&got, &kSentinel, 4) == 0;
            continue;
          }
          const size_t e = size_t(u) * gates + j;
          ok &= CheckElement(got, dw0[e], ref, e, /*bf16=*/true, &st.max_err, &st.max_err_f32);
        }
      ++st.cases;
      if (!ok && st.failures++ == 0)
        std::printf("    amx outer products: first failure n=%d units=%d gates=%d\n", n, units, gates);
    }
  std::printf("amx outer products: %d cases, max_rel_err %.3g, vs_fp32_ref %.3g  %s\n", st.cases,
              st.max_err, st.max_err_f32, st.failures ? "FAIL" : "PASS");
  return st.failures ? 1 : 0;
}

int RunChecks() {
  const int ms[] = {1, 2, 7, 15, 16, 17, 33, 225, 450, 451};
  const int kns[][2] = {{100, 300}, {300, 100}, {64, 192}, {192, 64},
                        {160, 480}, {1, 3},     {5, 7},    {17, 48}};
  const std::vector<Variant> variants = AvailableVariants();
  std::vector<Stats> stats(variants.size());
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  const float nan = std::nanf("");

  for (const auto& kn : kns) {
    const int k = kn[0], n = kn[1];
    std::vector<float> bdense(size_t(k) * n);
    for (float& x : bdense) x = uni(rng);
    for (int pad = 0; pad < 2; ++pad) {
      const int ldb_b = n + 3 * pad, ldb_x = k + 5 * pad;
      // Both source forms, guarded, padding = NaN.
      GuardedFloats bsrc(size_t(k - 1) * ldb_b + n), xsrc(size_t(n - 1) * ldb_x + k);
      std::fill(bsrc.data(), bsrc.data() + bsrc.size(), nan);
      std::fill(xsrc.data(), xsrc.data() + xsrc.size(), nan);
      for (int kk = 0; kk < k; ++kk)
        for (int j = 0; j < n; ++j) {
          bsrc.data()[size_t(kk) * ldb_b + j] = bdense[size_t(kk) * n + j];
          xsrc.data()[size_t(j) * ldb_x + kk] = bdense[size_t(kk) * n + j];
        }
      for (int transposed = 0; transposed < 2; ++transposed) {
        std::vector<PackedB> packed(variants.size());
        for (size_t v = 0; v < variants.size(); ++v) {
          std::snprintf(g_current_case, sizeof(g_current_case), "Pack %s: k=%d n=%d transposed=%d",
                        PathName(variants[v].path, variants[v].precision), k, n, transposed);
          if (transposed)
            packed[v].Pack(xsrc.data(), k, n, ldb_x, true, variants[v].precision, variants[v].path);
          else
            packed[v].Pack(bsrc.data(), k, n, ldb_b, false, variants[v].precision, variants[v].path);
        }
        for (int m : ms) {
          std::vector<float> adense(size_t(m) * k), c0(size_t(m) * n);
          for (float& x : adense) x = uni(rng);
          for (float& x : c0) x = uni(rng);
          const Ref ref = Reference(m, k, n, adense, bdense);
          // lda / ldc padding alternates with the B padding and the transposition.
          const int lda = k + ((pad + transposed) % 2) * 7, ldc = n + pad * 9 + transposed * 2;
          GuardedFloats abuf(size_t(m - 1) * lda + k), cbuf(size_t(m - 1) * ldc + n);
          std::fill(abuf.data(), abuf.data() + abuf.size(), nan);
          for (int i = 0; i < m; ++i)
            std::memcpy(abuf.data() + size_t(i) * lda, &adense[size_t(i) * k], k * sizeof(float));
          for (int accumulate = 0; accumulate < 2; ++accumulate) {
            for (size_t v = 0; v < variants.size(); ++v) {
              float* c = cbuf.data();
              std::fill(c, c + cbuf.size(), kSentinel);
              for (int i = 0; i < m; ++i)
                for (int j = 0; j < n; ++j)
                  c[size_t(i) * ldc + j] = accumulate ? c0[size_t(i) * n + j] : nan;
              std::snprintf(g_current_case, sizeof(g_current_case),
                            "%s: m=%d k=%d n=%d lda=%d ldc=%d transposed=%d accumulate=%d",
                            PathName(variants[v].path, variants[v].precision), m, k, n, lda,
                            ldc, transposed, accumulate);
              Gemm(m, abuf.data(), lda, packed[v], c, ldc, accumulate);
              const bool bf16 = variants[v].precision == Precision::kBfloat16;
              Stats& st = stats[v];
              ++st.cases;
              bool ok = true;
              double worst = 0, worst32 = 0;
              for (int i = 0; i < m; ++i) {
                for (int j = 0; j < ldc && (i < m - 1 || j < n); ++j) {
                  const float got = c[size_t(i) * ldc + j];
                  if (j >= n) {
                    if (std::memcmp(&got, &kSentinel, 4) != 0) ok = false;
                    continue;
                  }
                  const size_t e = size_t(i) * n + j;
                  if (!CheckElement(got, accumulate ? c0[e] : 0.0, ref, e, bf16, &worst,
                                    &worst32))
                    ok = false;
                }
              }
              st.max_err = std::max(st.max_err, worst);
              st.max_err_f32 = std::max(st.max_err_f32, worst32);
              if (!ok) {
                if (st.failures++ == 0) {
                  char buf[256];
                  std::snprintf(buf, sizeof(buf),
                                "m=%d k=%d n=%d lda=%d ldc=%d ldb_pad=%d transposed=%d "
                                "accumulate=%d err=%.3g",
                                m, k, n, lda, ldc, pad, transposed, accumulate, worst);
                  st.first_failure = buf;
                }
              }
            }
          }
        }
      }
    }
  }

  // Concurrency: two threads share each PackedB with their own A and C; each must get
  // bit-identical results to a single-threaded call (AMX: tile config per thread).
  std::vector<bool> thread_ok(variants.size(), true);
  {
    const int m = 225, k = 100, n = 300;
    std::vector<float> bm(size_t(k) * n), a1(size_t(m) * k), a2(size_t(m) * k);
    for (float& x : bm) x = uni(rng);
    for (float& x : a1) x = uni(rng);
    for (float& x : a2) x = uni(rng);
    for (size_t v = 0; v < variants.size(); ++v) {
      PackedB pb;
      pb.Pack(bm.data(), k, n, n, false, variants[v].precision, variants[v].path);
      std::vector<float> want1(size_t(m) * n), want2(size_t(m) * n);
      Gemm(m, a1.data(), k, pb, want1.data(), n, false);
      Gemm(m, a2.data(), k, pb, want2.data(), n, false);
      bool same[2] = {true, true};
      auto work = [&](int id) {
        const std::vector<float>& a = id ? a2 : a1;
        const std::vector<float>& want = id ? want2 : want1;
        std::vector<float> c(size_t(m) * n);
        for (int rep = 0; rep < 20; ++rep) {
          Gemm(m, a.data(), k, pb, c.data(), n, false);
          if (std::memcmp(c.data(), want.data(), c.size() * sizeof(float)) != 0) same[id] = false;
        }
      };
      std::thread t1(work, 0), t2(work, 1);
      t1.join();
      t2.join();
      thread_ok[v] = same[0] && same[1];
    }
  }

  int bad = CheckOuterProducts(rng);
  std::printf("%-22s %6s %14s %14s %8s  %s\n", "path", "cases", "max_rel_err", "vs_fp32_ref",
              "threads", "result");
  for (size_t v = 0; v < variants.size(); ++v) {
    const Stats& st = stats[v];
    const bool bf16 = variants[v].precision == Precision::kBfloat16;
    const bool pass = st.failures == 0 && thread_ok[v];
    bad += !pass;
    char f32[32] = "-";
    if (bf16) std::snprintf(f32, sizeof(f32), "%.3g", st.max_err_f32);
    std::printf("%-22s %6d %14.3g %14s %8s  %s\n", PathName(variants[v].path, variants[v].precision),
                st.cases, st.max_err, f32, thread_ok[v] ? "ok" : "DIFFER",
                pass ? "PASS" : "FAIL");
    if (st.failures)
      std::printf("    %d failing cases, first: %s\n", st.failures, st.first_failure.c_str());
  }
  std::printf("%s\n", bad ? "FAILED" : "all paths passed");
  return bad ? 1 : 0;
}

// ---------------------------------------------------------------------------------------
// Benchmark.

using Clock = std::chrono::steady_clock;

// Fastest microseconds per call over many short batches (~2 ms each, ~budget_s in total):
// the minimum ignores batches in which the thread was preempted on a shared machine.
template <typename F>
double TimeUs(F&& f, double budget_s) {
  f();  // warm up (scratch allocation, caches)
  const auto t0 = Clock::now();
  f();
  const double once = std::chrono::duration<double>(Clock::now() - t0).count();
  const int reps = std::max(1, int(2e-3 / std::max(once, 1e-7)));
  const int batches = std::max(5, int(budget_s / (reps * std::max(once, 1e-7))));
  double best = 1e30;
  for (int b = 0; b < batches; ++b) {
    const auto s = Clock::now();
    for (int r = 0; r < reps; ++r) f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - s).count() / reps);
  }
  return best * 1e6;
}

void NaiveGemm(int m, int k, int n, const float* a, const float* b, float* c) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      float s = 0;
      for (int p = 0; p < k; ++p) s += a[size_t(i) * k + p] * b[size_t(p) * n + j];
      c[size_t(i) * n + j] = s;
    }
}

// Peak fp32 FMA rate of one core with zmm (24 independent chains), in GFLOP/s: the best
// of several short runs.
__attribute__((target("avx512f"), noinline)) double PeakAvx512Gflops() {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  const long iters = 1000000;
  double best = 0;
  for (int run = 0; run < 20; ++run) {
    const auto t0 = Clock::now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 24
      for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, double(iters) * 24 * 32 / s / 1e9);
  }
  float sink = 0;
  alignas(64) float lanes[16];
  for (int i = 0; i < 24; ++i) {
    _mm512_store_ps(lanes, acc[i]);
    sink += lanes[0];
  }
  if (sink == 42.f) std::printf(" ");
  return best;
}

int RunBench() {
  const int shapes[][3] = {{225, 100, 300}, {225, 300, 100}, {450, 100, 300}};
  const std::vector<Variant> variants = AvailableVariants();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::printf("cpu: ");
  {
    FILE* f = std::fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && std::fgets(line, sizeof(line), f))
      if (std::strncmp(line, "model name", 10) == 0) {
        std::printf("%s", std::strchr(line, ':') + 2);
        break;
      }
    if (f) std::fclose(f);
  }
  std::printf("default paths: fp32=%s bf16=%s\n", PathName(Precision::kFloat32),
              PathName(Precision::kBfloat16));
  if (reseg_kernels::Cpu().avx512f)
    std::printf("measured avx512 fp32 FMA peak, 1 core: %.1f GFLOP/s\n", PeakAvx512Gflops());
  std::printf("%-22s %-16s %12s %10s\n", "path", "m,k,n", "us/call", "GFLOP/s");
  for (const auto& s : shapes) {
    const int m = s[0], k = s[1], n = s[2];
    const double flops = 2.0 * m * k * n;
    std::vector<float> a(size_t(m) * k), b(size_t(k) * n), c(size_t(m) * n);
    for (float& x : a) x = uni(rng);
    for (float& x : b) x = uni(rng);
    char shape[32];
    std::snprintf(shape, sizeof(shape), "%d,%d,%d", m, k, n);
    for (const Variant& v : variants) {
      PackedB pb;
      pb.Pack(b.data(), k, n, n, false, v.precision, v.path);
      const double us = TimeUs([&] { Gemm(m, a.data(), k, pb, c.data(), n, false); }, 0.1);
      std::printf("%-22s %-16s %12.1f %10.1f\n", PathName(v.path, v.precision), shape, us,
                  flops / us / 1e3);
    }
    const double us = TimeUs([&] { NaiveGemm(m, k, n, a.data(), b.data(), c.data()); }, 0.1);
    std::printf("%-22s %-16s %12.1f %10.1f\n", "naive_loop", shape, us, flops / us / 1e3);
  }
  if (reseg_kernels::Cpu().amx_bf16) {
    // dw_h's outer products at the GRU step shapes: k = lines, [units, lines] x [lines, gates].
    for (const int lines : {225, 300}) {
      const int units = 100, gates = 300;
      std::vector<float> hp(size_t(lines) * units), dg(size_t(lines) * gates), dw(size_t(units) * gates);
      for (float& x : hp) x = uni(rng);
      for (float& x : dg) x = uni(rng);
      char shape[32];
      std::snprintf(shape, sizeof(shape), "%d,%d,%d", units, lines, gates);
      const double us = TimeUs([&] {
        reseg_kernels::AccumulateOuterProductsBf16(lines, units, gates, hp.data(), dg.data(),
                                                   dw.data(), gates);
      }, 0.1);
      std::printf("%-22s %-16s %12.1f %10.1f\n", "amx outer products", shape, us,
                  2.0 * lines * units * gates / us / 1e3);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const reseg_kernels::CpuFeatures& cpu = reseg_kernels::Cpu();
  std::printf("cpu features: avx2_fma=%d avx512f=%d avx512_bf16=%d amx_bf16=%d\n", cpu.avx2_fma,
              cpu.avx512f, cpu.avx512_bf16, cpu.amx_bf16);
  if (argc > 1 && std::strcmp(argv[1], "--bench") == 0) return RunBench();
  signal(SIGSEGV, OnSegv);
  return RunChecks();
}
