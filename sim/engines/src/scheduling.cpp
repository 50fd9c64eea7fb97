#include "scheduling.hpp"

#include <algorithm>
#include <optional>

namespace dla::sim::detail {

TokenUse token_use(const isa::Tokens& t, int q) {
  TokenUse u;
  if (t.pop_prev) u.pops[0] = fifo_between(q - 1, q);
  if (t.pop_next) u.pops[1] = fifo_between(q + 1, q);
  if (t.push_prev) u.pushes[0] = fifo_between(q, q - 1);
  if (t.push_next) u.pushes[1] = fifo_between(q, q + 1);
  return u;
}

std::string insn_name(const std::vector<isa::Instruction>& prog, std::uint32_t i) {
  return "instruction " + std::to_string(i) + " (" + std::string(isa::info_of(prog[i]).mnemonic) + ")";
}

std::string queue_text(int q) { return std::string(isa::queue_name(static_cast<isa::Queue>(q))) + " queue"; }

namespace {

/// Why the head instruction i of queue q cannot move.
std::string blocked_reason(const StuckScheduler& s, std::uint32_t i, int q) {
  const auto& insns = *s.insns;
  for (int f : (*s.pending)[static_cast<std::size_t>(q)]) {
    if (f < 0) continue;
    return insn_name(insns, i) + " waits for room in the full token FIFO to the " + queue_text(fifo_target(f)) +
           " (token_depth = " + std::to_string(s.token_depth) + ")";
  }
  const TokenUse u = token_use(isa::tokens_of(insns[i]), q);
  for (int f : u.pops) {
    if (f < 0 || !s.fifo_empty[static_cast<std::size_t>(f)]) continue;
    const int src = fifo_source(f);
    // The next instruction that would push into f: queued on the source queue, or not
    // dispatched yet.
    auto pushes_f = [&](std::uint32_t j) {
      const auto qj = static_cast<int>(isa::queue_of(insns[j]));
      if (qj != src) return false;
      const TokenUse uj = token_use(isa::tokens_of(insns[j]), qj);
      return uj.pushes[0] == f || uj.pushes[1] == f;
    };
    std::optional<std::uint32_t> pusher;
    bool dispatched = true;
    for (std::uint32_t j : *s.queues[static_cast<std::size_t>(src)]) {
      if (pushes_f(j)) {
        pusher = j;
        break;
      }
    }
    if (!pusher) {
      dispatched = false;
      for (std::uint32_t j = s.next; j < insns.size(); ++j) {
        if (pushes_f(j)) {
          pusher = j;
          break;
        }
      }
    }
    std::string what = insn_name(insns, i) + " waits for a token from the " + queue_text(src);
    if (!pusher) return what + " that no instruction pushes";
    return what + "; the next one would come from " + insn_name(insns, *pusher) +
           (dispatched ? ", which is blocked" : ", which is not dispatched yet");
  }
  return insn_name(insns, i) + " is blocked";
}

}  // namespace

std::string deadlock_message(const StuckScheduler& s, std::uint32_t* first) {
  const auto& insns = *s.insns;
  std::string what = "deadlock: ";
  auto lowest = static_cast<std::uint32_t>(insns.size());
  bool any = false;
  for (int q = 0; q < kQueues; ++q) {
    const auto& queue = *s.queues[static_cast<std::size_t>(q)];
    if (queue.empty()) continue;
    what += (any ? "; " : "") + blocked_reason(s, queue.front(), q);
    lowest = std::min(lowest, queue.front());
    any = true;
  }
  if (s.next < insns.size()) {
    const auto q = isa::queue_of(insns[s.next]);
    what += (any ? "; " : "") + insn_name(insns, s.next) +
            (q == isa::Queue::kAll ? " waits for the queues to drain"
                                   : " cannot be dispatched: the " + queue_text(static_cast<int>(q)) +
                                         " is full (queue_depth = " + std::to_string(s.queue_depth) + ")");
    lowest = std::min(lowest, s.next);
  }
  *first = lowest;
  return what;
}

}  // namespace dla::sim::detail
