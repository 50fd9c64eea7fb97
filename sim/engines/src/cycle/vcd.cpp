// The cycle model's VCD recorder (vcd.hpp).
#include "vcd.hpp"

#include <algorithm>
#include <sstream>

#include "dla/error.hpp"
#include "dla/file_io.hpp"

namespace dla::sim::cycle {
namespace {

struct SigInfo {
  const char* name;
  int width;
};
constexpr SigInfo kSigs[kNumSigs] = {
    {"fetch_state", 3},   {"fetch_pc", 32},    {"load_state", 3},   {"load_insn", 32},  {"compute_state", 3},
    {"compute_insn", 32}, {"store_state", 3},  {"store_insn", 32},  {"mac_busy", 1},    {"requant_busy", 1},
    {"vector_busy", 1},   {"dram_read", 1},    {"dram_write", 1},
};

std::uint32_t idle_value(int s) {
  const auto sig = static_cast<Sig>(s);
  const bool insn = sig == Sig::kFetchPc || sig == Sig::kLoadInsn || sig == Sig::kComputeInsn || sig == Sig::kStoreInsn;
  return insn ? kNoInsn : 0;
}

std::string code(int s) { return std::string(1, static_cast<char>('!' + s)); }

std::string value_text(int s, std::uint32_t v) {
  if (kSigs[s].width == 1) return std::to_string(v & 1u) + code(s);
  if (v == kNoInsn) return "bx " + code(s);
  std::string bits;
  for (std::uint32_t x = v; x != 0; x >>= 1) bits.insert(bits.begin(), static_cast<char>('0' + (x & 1u)));
  if (bits.empty()) bits = "0";
  return "b" + bits + " " + code(s);
}

}  // namespace

VcdRecorder::VcdRecorder(std::string path, std::uint64_t begin, std::uint64_t end, bool by_layer,
                         std::uint64_t period_ps, std::int64_t clock_mhz)
    : path_(std::move(path)), begin_(by_layer ? 0 : begin), end_(by_layer ? UINT64_MAX : end), by_layer_(by_layer),
      period_ps_(period_ps), clock_mhz_(clock_mhz) {
  for (int s = 0; s < kNumSigs; ++s) initial_[static_cast<std::size_t>(s)] = idle_value(s);
}

void VcdRecorder::fold(const Event& e) {
  const auto s = static_cast<std::size_t>(e.sig);
  if (e.at >= initial_at_[s]) {
    initial_[s] = e.value;
    initial_at_[s] = e.at;
  }
}

void VcdRecorder::set(std::uint64_t now, std::uint64_t at, Sig sig, std::uint32_t value) {
  const Event e{at, value, sig};
  if (by_layer_ && !opened_) {
    // Not decided yet: the window opens at or after `now`.
    events_.push_back(e);
    if (events_.size() >= 8192) {
      std::vector<Event> keep;
      for (const Event& x : events_) {
        if (x.at < now) {
          fold(x);
        } else {
          keep.push_back(x);
        }
      }
      events_.swap(keep);
    }
    return;
  }
  if (at < begin_) {
    fold(e);
  } else if (at < end_) {
    events_.push_back(e);
  }
}

void VcdRecorder::open(std::uint64_t at) {
  if (opened_) return;
  opened_ = true;
  begin_ = at;
  std::vector<Event> keep;
  for (const Event& x : events_) {
    if (x.at < at) {
      fold(x);
    } else {
      keep.push_back(x);
    }
  }
  events_.swap(keep);
}

void VcdRecorder::close(std::uint64_t at) {
  if (closed_) return;
  closed_ = true;
  end_ = at + 1;
}

void VcdRecorder::write(std::uint64_t end_cycle) const {
  std::ostringstream f;
  const bool empty = by_layer_ && !opened_;
  const std::uint64_t begin = empty ? 0 : begin_;
  const std::uint64_t end = std::min(end_, end_cycle + 1);
  f << "$version dlasim cycle model $end\n";
  f << "$comment clock " << clock_mhz_ << " MHz, one cycle = " << period_ps_ << " ps; cycles [" << begin << ", "
    << end << ")";
  if (empty) f << "; the layer ran no instruction";
  f << ". *_state: 0 idle, 1 busy, 2 waiting for a token (fetch: queue full), 3 waiting for room in a token FIFO "
       "(fetch: SYNC/END draining), 4 DRAM latency, 5 DRAM transfer. *_insn, fetch_pc: instruction index. $end\n";
  f << "$timescale 1ps $end\n$scope module dla $end\n";
  for (int s = 0; s < kNumSigs; ++s) {
    f << "$var wire " << kSigs[s].width << " " << code(s) << " " << kSigs[s].name << " $end\n";
  }
  f << "$upscope $end\n$enddefinitions $end\n";
  f << "#" << begin * period_ps_ << "\n$dumpvars\n";
  for (int s = 0; s < kNumSigs; ++s) f << value_text(s, initial_[static_cast<std::size_t>(s)]) << "\n";
  f << "$end\n";
  if (!empty) {
    std::vector<Event> ev;
    for (const Event& e : events_) {
      if (e.at >= begin && e.at < end) ev.push_back(e);
    }
    std::stable_sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) { return a.at < b.at; });
    // Only changes are written; the last change of a signal within a cycle wins.
    std::array<std::uint32_t, kNumSigs> current = initial_;
    std::uint64_t last = begin;
    for (std::size_t k = 0; k < ev.size();) {
      const std::uint64_t at = ev[k].at;
      std::array<std::uint32_t, kNumSigs> next = current;
      for (; k < ev.size() && ev[k].at == at; ++k) next[static_cast<std::size_t>(ev[k].sig)] = ev[k].value;
      if (next == current) continue;
      if (at != last) {
        f << "#" << at * period_ps_ << "\n";
        last = at;
      }
      for (int s = 0; s < kNumSigs; ++s) {
        const auto si = static_cast<std::size_t>(s);
        if (next[si] != current[si]) f << value_text(s, next[si]) << "\n";
      }
      current = next;
    }
    if (end > last && end != UINT64_MAX) f << "#" << end * period_ps_ << "\n";
  }
  write_file_atomically(path_, f.str(), "trace file");
}

}  // namespace dla::sim::cycle
