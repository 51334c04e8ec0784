// The compiled ReNet sweep: a whole GRU recurrence along one spatial axis of
// a [B, H, W, C] map, forward (ResegGruSweep) and backward
// (ResegGruSweepGrad), as TensorFlow CPU ops.
//
// The maths is reseg_tf/model/cells.py's (the reset gate scales h @ w_hc
// after the matmul):
//   r = sigmoid(gx_r + b_r + h w_hr)     u = sigmoid(gx_u + b_u + h w_hu)
//   c = tanh(gx_c + b_c + r * (h w_hc))  h' = h + u * (c - h)
// and the ops have the interface of renet_fused.py's XLA loops, so that one
// Python sweep (reseg_tf/model/sweep.py) calls either:
//   gx [B, H, W, D*3U]  input projections x @ w_x of D directions (no bias)
//   w_h [D, U, 3U], b [D, 3U]
//   hs [B, H, W, D*U]   the states, in input order; direction d runs in
//                       reverse time when reverse[d].
// With keep_gates off (inference) the forward op keeps no gates (saved has 0
// steps): the gates are 4U of the 5U floats it writes a line and step. The
// gradient op returns dgx, dw_h
// and db; the input projections and their
// gradients stay in TensorFlow, where oneDNN runs them. gx and dgx are
// float32, or bfloat16 when the projections run in bfloat16 (attr T): the op
// then reads the matmul's output and writes its gradient's input directly,
// widened and rounded (to nearest even, as TensorFlow's Cast) a line at a
// time, instead of two Cast ops a sweep passing the whole map through memory.
//
// Why it is fast: every line (a row or column of the map) recurs on its own,
// so the lines are split once into one contiguous block per thread of
// TensorFlow's intra-op pool, and each thread runs the whole sweep of its
// block with no synchronisation between time steps. Per step and direction a
// thread does one GEMM for h @ w_h on all its lines (gemm.h: AVX-512 / AVX2
// fp32, or bf16 with fp32 accumulation on AMX / AVX512-BF16, chosen from the
// CPU's flags at run time) and one fused pass over the gates; the backward
// pass likewise, with one GEMM for dgates @ w_h^T and, while the step's
// dgates and h_prev rows are in cache, their outer products into the
// thread's own dw_h, summed over threads at the end: in fp32 FMA registers
// (gru_gates.h), or in bf16 as one AMX GEMM over the step's lines (gemm.h)
// where the CPU has AMX (its inputs repacked per step, still 3x faster).

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "gemm.h"
#include "gru_gates.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace reseg {
namespace {

using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;
using reseg_kernels::Precision;

// Where time step t of line l lives in a [B, H, W] grid. Along the rows
// (axis 2) a line is one (b, h) and time runs over w; down the columns
// (axis 1) a line is one (b, w) and time runs over h.
struct Geometry {
  int64_t batch, height, width;
  int axis;
  int64_t steps() const { return axis == 2 ? width : height; }
  int64_t lines() const { return batch * (axis == 2 ? height : width); }
  int64_t position(int64_t line, int64_t t) const {
    if (axis == 2) return line * width + t;
    const int64_t b = line / width, w = line % width;
    return (b * height + t) * width + w;
  }
};

// Attributes shared by both ops.
struct SweepAttrs {
  int axis = 2;
  std::vector<bool> reverse;
  Precision precision = Precision::kFloat32;
  bool timing = false;  // Measure the phases (benchmarks/sweep_kernel.py).

  explicit SweepAttrs(OpKernelConstruction* context) {
    OP_REQUIRES_OK(context, context->GetAttr("axis", &axis));
    OP_REQUIRES(context, axis == 1 || axis == 2,
                InvalidArgument("axis must be 1 or 2, got ", axis));
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &reverse));
    OP_REQUIRES(context, !reverse.empty(),
                InvalidArgument("reverse needs one entry per direction"));
    bool bf16 = false;
    OP_REQUIRES_OK(context, context->GetAttr("bf16", &bf16));
    precision = bf16 ? Precision::kBfloat16 : Precision::kFloat32;
    OP_REQUIRES_OK(context, context->GetAttr("timing", &timing));
  }
  int directions() const { return static_cast<int>(reverse.size()); }
  // Time index of processing step p of direction d.
  int64_t time(int64_t p, int d, int64_t steps) const {
    return reverse[d] ? steps - 1 - p : p;
  }
};

// What each block of lines reports after its sweep: its shares of db and
// dw_h, and the seconds it spent in GEMMs, gate passes and dw_h (when timed).
struct BlockResult {
  std::vector<float> db, dw_h;
  double gemm_seconds = 0, gate_seconds = 0, dw_seconds = 0;
};

// Runs fn(first_line, end_line, result) on one contiguous block of lines per
// thread of the intra-op pool; returns the blocks' results in line order, so
// that sums over them do not depend on which thread ran which block.
template <typename Fn>
std::vector<BlockResult> ForEachLineBlock(OpKernelContext* context, int64_t lines,
                                          const Fn& fn) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t threads = std::max(1, pool->NumThreads());
  const int64_t block = (lines + threads - 1) / threads;
  std::vector<BlockResult> results((lines + block - 1) / block);
  pool->ParallelFor(lines, tsl::thread::ThreadPool::SchedulingParams::Fixed(block),
                    [&](int64_t begin, int64_t end) { fn(begin, end, &results[begin / block]); });
  return results;
}

// Adds the seconds fn() takes to *total when on (a clock read costs ~20 ns,
// a step's phase tens of microseconds).
template <typename Fn>
void Timed(bool on, double* total, const Fn& fn) {
  if (!on) return fn();
  const auto start = std::chrono::steady_clock::now();
  fn();
  *total += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Output `phase_seconds` [3]: GEMM, gate-pass and dw_h seconds summed over
// blocks.
void WritePhaseSeconds(OpKernelContext* context, int index,
                       const std::vector<BlockResult>& blocks) {
  Tensor* out = nullptr;
  OP_REQUIRES_OK(context, context->allocate_output(index, TensorShape({3}), &out));
  auto seconds = out->flat<float>();
  seconds(0) = seconds(1) = seconds(2) = 0;
  for (const auto& block : blocks) {
    seconds(0) += block.gemm_seconds;
    seconds(1) += block.gate_seconds;
    seconds(2) += block.dw_seconds;
  }
}

// w_h [U, 3U] of every direction packed for the GEMMs: as the right-hand
// side of h @ w_h, or transposed ([3U, U]) for dgates @ w_h^T.
std::vector<reseg_kernels::PackedB> PackRecurrentWeights(
    const Tensor& w_h, bool transposed, Precision precision) {
  const int directions = w_h.dim_size(0), units = w_h.dim_size(1);
  const int k = transposed ? 3 * units : units, n = transposed ? units : 3 * units;
  const float* data = w_h.flat<float>().data();
  std::vector<reseg_kernels::PackedB> packed(directions);
  for (int d = 0; d < directions; ++d) {
    packed[d].Pack(data + int64_t(d) * units * 3 * units, k, n, 3 * units,
                   transposed, precision);
  }
  return packed;
}

// Direction d's row at map position pos of a [B, H, W, D*U] state map (hs, dhs).
template <typename T>
T* StateRow(T* map, int64_t pos, int num_dir, int d, int64_t units) {
  return map + (pos * num_dir + d) * units;
}

// The gates [r, u, c, gh_c] that the forward pass keeps for the backward pass:
// step p, direction d, line `line` of a [steps, D, lines, 4U] buffer (saved).
template <typename T>
T* SavedRow(T* saved, int64_t p, int num_dir, int d, int64_t lines, int64_t line,
            int64_t units) {
  return saved + ((p * num_dir + d) * lines + line) * 4 * units;
}

// Along the rows a step's lines lie a whole row of the map apart (96 KB for
// hs and 288 KB for gx at the CamVid shape with two directions), so each
// line's rows start a fresh stream, which the hardware prefetchers pick up
// only after a few misses. Fetching the rows of the line two ahead, within
// the same step, hides those misses (docs/performance.md: the backward gate
// pass along the rows took half the time). Down the columns the lines are
// adjacent and this costs a few instructions.
constexpr int64_t kPrefetchLinesAhead = 2;

template <bool kForWrite>
void PrefetchBytes(const void* address, int64_t bytes) {
  const char* begin = static_cast<const char*>(address);
  for (int64_t offset = 0; offset < bytes; offset += 64) {
    __builtin_prefetch(begin + offset, kForWrite ? 1 : 0, 3);
  }
  __builtin_prefetch(begin + bytes - 1, kForWrite ? 1 : 0, 3);  // A partial last line.
}

// The rows of gx or dgx, float32 or bfloat16 (attr T), a line and a time step
// at a time: `Read` returns a row as float32 (widened into `buffer` when
// stored as bfloat16), `Write` stores a float32 row (rounded when bfloat16).
class GateRows {
 public:
  GateRows(const Tensor& tensor, int64_t row_length)
      : data_(const_cast<char*>(tensor.tensor_data().data())),
        bf16_(tensor.dtype() == ::tensorflow::DT_BFLOAT16), row_length_(row_length) {}
  const float* Read(int64_t index, float* buffer) const {
    if (!bf16_) return static_cast<const float*>(row(index));
    const uint16_t* src = static_cast<const uint16_t*>(row(index));
    for (int64_t j = 0; j < row_length_; ++j) buffer[j] = reseg_kernels::Bf16ToFloat(src[j]);
    return buffer;
  }
  // Where to compute row `index` into: the row itself, or `buffer` for Write.
  float* Target(int64_t index, float* buffer) const {
    return bf16_ ? buffer : static_cast<float*>(row(index));
  }
  template <bool kForWrite>
  void Prefetch(int64_t index) const {
    PrefetchBytes<kForWrite>(row(index), row_length_ * (bf16_ ? 2 : 4));
  }
  void Write(int64_t index, const float* buffer) const {
    if (!bf16_) return;
    uint16_t* dst = static_cast<uint16_t*>(row(index));
    for (int64_t j = 0; j < row_length_; ++j) dst[j] = reseg_kernels::FloatToBf16(buffer[j]);
  }

 private:
  void* row(int64_t index) const { return data_ + index * row_length_ * (bf16_ ? 2 : 4); }

  char* data_;
  bool bf16_;
  int64_t row_length_;
};

Geometry GeometryOf(const Tensor& map, int axis) {
  return {map.dim_size(0), map.dim_size(1), map.dim_size(2), axis};
}

class GruSweepOp : public OpKernel {
 public:
  explicit GruSweepOp(OpKernelConstruction* context)
      : OpKernel(context), attrs_(context) {
    OP_REQUIRES_OK(context, context->GetAttr("keep_gates", &keep_gates_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& gx = context->input(0);
    const Tensor& w_h = context->input(1);
    const Tensor& b = context->input(2);
    const int num_dir = attrs_.directions();
    OP_REQUIRES(context, w_h.dims() == 3 && w_h.dim_size(0) == num_dir &&
                             w_h.dim_size(2) == 3 * w_h.dim_size(1),
                InvalidArgument("w_h must be [D, U, 3U] with D = ", num_dir,
                                ", got ", w_h.shape().DebugString()));
    const int64_t units = w_h.dim_size(1), gates = 3 * units;
    OP_REQUIRES(context, gx.dims() == 4 && gx.dim_size(3) == num_dir * gates,
                InvalidArgument("gx must be [B, H, W, D*3U] = [.., ",
                                num_dir * gates, "], got ",
                                gx.shape().DebugString()));
    OP_REQUIRES(context, b.NumElements() == num_dir * gates,
                InvalidArgument("b must hold D*3U = ", num_dir * gates,
                                " values, got ", b.shape().DebugString()));
    const Geometry grid = GeometryOf(gx, attrs_.axis);
    const int64_t steps = grid.steps(), lines = grid.lines();

    Tensor* hs_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
        0, TensorShape({grid.batch, grid.height, grid.width, num_dir * units}),
        &hs_tensor));
    // The gates (r, u, c, h @ w_hc) by processing step, for the backward op;
    // none (0 steps) when keep_gates is off: inference, where the forward pass
    // then writes the states only.
    Tensor* saved_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(
        1, TensorShape({keep_gates_ ? steps : 0, num_dir, lines, 4 * units}),
        &saved_tensor));
    if (steps == 0 || lines == 0) return WritePhaseSeconds(context, 2, {});

    const auto weights = PackRecurrentWeights(w_h, false, attrs_.precision);
    const GateRows gx_rows(gx, gates);  // Row (pos * num_dir + d): one direction's gates.
    const float* b_data = b.flat<float>().data();
    float* hs = hs_tensor->flat<float>().data();
    float* saved = saved_tensor->flat<float>().data();
    const auto& gate_kernels = reseg_kernels::Gates();

    const auto blocks = ForEachLineBlock(context, lines, [&](int64_t first, int64_t end,
                                                             BlockResult* result) {
      const int64_t n = end - first;
      std::vector<float> state(num_dir * n * units, 0.0f);
      std::vector<float> gates_h(n * gates), gx_row(gates);
      for (int64_t p = 0; p < steps; ++p) {
        for (int d = 0; d < num_dir; ++d) {
          const int64_t t = attrs_.time(p, d, steps);
          float* h = state.data() + d * n * units;
          Timed(attrs_.timing, &result->gemm_seconds, [&] {
            reseg_kernels::Gemm(n, h, units, weights[d], gates_h.data(), gates,
                                /*accumulate=*/false);
          });
          const float* bias = b_data + d * gates;
          Timed(attrs_.timing, &result->gate_seconds, [&] {
            for (int64_t i = 0; i < n; ++i) {
              if (i + kPrefetchLinesAhead < n) {
                const int64_t ahead = grid.position(first + i + kPrefetchLinesAhead, t);
                gx_rows.Prefetch<false>(ahead * num_dir + d);
                PrefetchBytes<true>(StateRow(hs, ahead, num_dir, d, units),
                                    units * sizeof(float));
              }
              const int64_t pos = grid.position(first + i, t);
              gate_kernels.forward(
                  units, gx_rows.Read(pos * num_dir + d, gx_row.data()), bias,
                  gates_h.data() + i * gates, h + i * units,
                  keep_gates_ ? SavedRow(saved, p, num_dir, d, lines, first + i, units)
                              : nullptr,
                  StateRow(hs, pos, num_dir, d, units));
            }
          });
        }
      }
    });
    WritePhaseSeconds(context, 2, blocks);
  }

 private:
  SweepAttrs attrs_;
  bool keep_gates_ = true;
};

class GruSweepGradOp : public OpKernel {
 public:
  explicit GruSweepGradOp(OpKernelConstruction* context)
      : OpKernel(context), attrs_(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& dhs_tensor = context->input(0);
    const Tensor& hs_tensor = context->input(1);
    const Tensor& saved_tensor = context->input(2);
    const Tensor& w_h = context->input(3);
    const int num_dir = attrs_.directions();
    const int64_t units = w_h.dim_size(1), gates = 3 * units;
    OP_REQUIRES(context, hs_tensor.shape() == dhs_tensor.shape() &&
                             hs_tensor.dims() == 4 &&
                             hs_tensor.dim_size(3) == num_dir * units,
                InvalidArgument("hs and dhs must both be [B, H, W, D*U]"));
    const Geometry grid = GeometryOf(hs_tensor, attrs_.axis);
    const int64_t steps = grid.steps(), lines = grid.lines();
    OP_REQUIRES(context, saved_tensor.NumElements() ==
                             steps * num_dir * lines * 4 * units,
                InvalidArgument("saved does not match hs (a forward op run with "
                                "keep_gates=false keeps none)"));

    const TensorShape gate_shape(
        {grid.batch, grid.height, grid.width, num_dir * gates});
    Tensor *dgx_tensor = nullptr, *dw_h_tensor = nullptr, *db_tensor = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, gate_shape, &dgx_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(1, w_h.shape(), &dw_h_tensor));
    OP_REQUIRES_OK(context, context->allocate_output(
        2, TensorShape({num_dir, gates}), &db_tensor));
    float* db = db_tensor->flat<float>().data();
    float* dw_h = dw_h_tensor->flat<float>().data();
    std::fill(db, db + num_dir * gates, 0.0f);
    std::fill(dw_h, dw_h + num_dir * units * gates, 0.0f);
    if (steps == 0 || lines == 0) {
      std::memset(const_cast<char*>(dgx_tensor->tensor_data().data()), 0,
                  dgx_tensor->tensor_data().size());
      return WritePhaseSeconds(context, 3, {});
    }

    const auto weights_t = PackRecurrentWeights(w_h, true, attrs_.precision);
    const float* dhs = dhs_tensor.flat<float>().data();
    const float* hs = hs_tensor.flat<float>().data();
    const float* saved = saved_tensor.flat<float>().data();
    const GateRows dgx_rows(*dgx_tensor, gates);
    const auto& gate_kernels = reseg_kernels::Gates();
    // In bf16 on AMX, dw_h's products are of bf16-rounded h_prev and dgates,
    // as every other GEMM of the bf16 sweep; elsewhere they stay fp32 (on
    // AVX512-BF16 alone, bf16 dot products are no faster than fp32 FMA).
    const bool dw_on_amx = attrs_.precision == Precision::kBfloat16 &&
                           reseg_kernels::Cpu().amx_bf16;

    const auto blocks = ForEachLineBlock(context, lines, [&](int64_t first, int64_t end,
                                                             BlockResult* result) {
      const int64_t n = end - first;
      std::vector<float> dstate(num_dir * n * units, 0.0f);
      std::vector<float> dgates_h(n * gates), h_prev_rows(n * units), dgx_row(gates);
      result->db.assign(num_dir * gates, 0.0f);
      result->dw_h.assign(num_dir * units * gates, 0.0f);
      for (int64_t p = steps - 1; p >= 0; --p) {
        for (int d = 0; d < num_dir; ++d) {
          const int64_t t = attrs_.time(p, d, steps);
          float* dh = dstate.data() + d * n * units;
          float* db_d = result->db.data() + d * gates;
          Timed(attrs_.timing, &result->gate_seconds, [&] {
            for (int64_t i = 0; i < n; ++i) {
              if (i + kPrefetchLinesAhead < n) {
                const int64_t line = first + i + kPrefetchLinesAhead;
                const int64_t ahead = grid.position(line, t);
                PrefetchBytes<false>(StateRow(dhs, ahead, num_dir, d, units),
                                     units * sizeof(float));
                if (p > 0) {
                  const int64_t prev = grid.position(line, attrs_.time(p - 1, d, steps));
                  PrefetchBytes<false>(StateRow(hs, prev, num_dir, d, units),
                                       units * sizeof(float));
                }
                dgx_rows.Prefetch<true>(ahead * num_dir + d);
              }
              const int64_t line = first + i, pos = grid.position(line, t);
              // h at the previous step, gathered for dw_h (none at the first).
              float* h_prev = nullptr;
              if (p > 0) {
                h_prev = h_prev_rows.data() + i * units;
                const int64_t prev = grid.position(line, attrs_.time(p - 1, d, steps));
                std::memcpy(h_prev, StateRow(hs, prev, num_dir, d, units),
                            units * sizeof(float));
              }
              const int64_t dgx_index = pos * num_dir + d;
              gate_kernels.backward(
                  units, SavedRow(saved, p, num_dir, d, lines, line, units), h_prev,
                  StateRow(dhs, pos, num_dir, d, units), dh + i * units,
                  dgx_rows.Target(dgx_index, dgx_row.data()), dgates_h.data() + i * gates,
                  db_d);
              dgx_rows.Write(dgx_index, dgx_row.data());
            }
          });
          if (p > 0) {
            Timed(attrs_.timing, &result->dw_seconds, [&] {
              float* dw = result->dw_h.data() + d * units * gates;
              if (dw_on_amx) {
                reseg_kernels::AccumulateOuterProductsBf16(
                    n, units, gates, h_prev_rows.data(), dgates_h.data(), dw, gates);
              } else {
                gate_kernels.outer_products(n, units, gates, h_prev_rows.data(),
                                            dgates_h.data(), dw);
              }
            });
          }
          // dh (to the previous step) += dgates_h @ w_h^T.
          Timed(attrs_.timing, &result->gemm_seconds, [&] {
            reseg_kernels::Gemm(n, dgates_h.data(), gates, weights_t[d], dh, units,
                                /*accumulate=*/true);
          });
        }
      }
    });
    for (const auto& block : blocks) {
      for (int64_t j = 0; j < num_dir * gates; ++j) db[j] += block.db[j];
      for (int64_t j = 0; j < num_dir * units * gates; ++j) dw_h[j] += block.dw_h[j];
    }
    WritePhaseSeconds(context, 3, blocks);
  }

 private:
  SweepAttrs attrs_;
};

}  // namespace
}  // namespace reseg

namespace tensorflow {

REGISTER_OP("ResegGruSweep")
    .Input("gx: T")
    .Input("w_h: float")
    .Input("b: float")
    .Output("hs: float")
    .Output("saved: float")
    .Output("phase_seconds: float")
    .Attr("axis: int")
    .Attr("reverse: list(bool)")
    .Attr("bf16: bool = false")
    .Attr("timing: bool = false")
    .Attr("keep_gates: bool = true")
    .Attr("T: {float, bfloat16} = DT_FLOAT")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      std::vector<bool> reverse;
      int axis = 0;
      bool keep_gates = true;
      TF_RETURN_IF_ERROR(c->GetAttr("keep_gates", &keep_gates));
      TF_RETURN_IF_ERROR(c->GetAttr("reverse", &reverse));
      TF_RETURN_IF_ERROR(c->GetAttr("axis", &axis));
      shape_inference::ShapeHandle gx, w_h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &gx));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &w_h));
      shape_inference::DimensionHandle units = c->Dim(w_h, 1), hs_channels;
      TF_RETURN_IF_ERROR(c->Multiply(units, int64_t(reverse.size()), &hs_channels));
      c->set_output(0, c->MakeShape({c->Dim(gx, 0), c->Dim(gx, 1), c->Dim(gx, 2),
                                     hs_channels}));
      shape_inference::DimensionHandle lines, saved_channels;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(gx, 0), c->Dim(gx, axis == 2 ? 1 : 2),
                                     &lines));
      TF_RETURN_IF_ERROR(c->Multiply(units, 4, &saved_channels));
      c->set_output(1, c->MakeShape({keep_gates ? c->Dim(gx, axis) : c->MakeDim(int64_t{0}),
                                     c->MakeDim(int64_t(reverse.size())),
                                     lines, saved_channels}));
      c->set_output(2, c->Vector(3));
      return OkStatus();
    })
    .Doc("A whole GRU sweep of D directions along axis (reseg_tf/kernels/gru_sweep.cc).");

REGISTER_OP("ResegGruSweepGrad")
    .Input("dhs: float")
    .Input("hs: float")
    .Input("saved: float")
    .Input("w_h: float")
    .Output("dgx: T")
    .Output("dw_h: float")
    .Output("db: float")
    .Output("phase_seconds: float")
    .Attr("axis: int")
    .Attr("reverse: list(bool)")
    .Attr("bf16: bool = false")
    .Attr("timing: bool = false")
    .Attr("T: {float, bfloat16} = DT_FLOAT")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      std::vector<bool> reverse;
      TF_RETURN_IF_ERROR(c->GetAttr("reverse", &reverse));
      shape_inference::ShapeHandle hs, w_h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 4, &hs));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(3), 3, &w_h));
      shape_inference::DimensionHandle gates, channels;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(w_h, 1), 3, &gates));
      TF_RETURN_IF_ERROR(c->Multiply(gates, int64_t(reverse.size()), &channels));
      c->set_output(0, c->MakeShape({c->Dim(hs, 0), c->Dim(hs, 1), c->Dim(hs, 2), channels}));
      c->set_output(1, w_h);
      c->set_output(2, c->MakeShape({c->MakeDim(int64_t(reverse.size())), gates}));
      c->set_output(3, c->Vector(3));
      return OkStatus();
    })
    .Doc("The gradient of ResegGruSweep: dgx, dw_h and db.");

REGISTER_KERNEL_BUILDER(Name("ResegGruSweep").Device(DEVICE_CPU),
                        reseg::GruSweepOp);
REGISTER_KERNEL_BUILDER(Name("ResegGruSweepGrad").Device(DEVICE_CPU),
                        reseg::GruSweepGradOp);

}  // namespace tensorflow
