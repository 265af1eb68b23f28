// CrashAttribution: whether a worker's death during a task's attempt is the task's fault. A poison
// pill kills its worker on every attempt while other tasks' attempts succeed: its crashes count
// against its retries and it fails (--max-retries). But when workers die from outside at a steady
// rate (the OOM killer, an operator, chaos), a task can be hit on each of its attempts by chance: when
// a good share of other tasks' recent attempts crashed too, the crash is the pool's, and the attempt
// is not charged to the task (at most kMaxExcused per task, so its cost stays bounded).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace cbm {

class CrashAttribution {
 public:
  static constexpr int kMaxExcused = 8;

  // Every ended attempt: its task, and whether its worker died under it.
  void note(std::uint64_t task, bool crashed) {
    recent_[next_ % kWindow] = Entry{task, crashed, true};
    ++next_;
  }

  // True when at least kBackgroundShare of the other tasks' recent attempts crashed (and there are
  // enough of them to tell).
  bool background(std::uint64_t task) const {
    std::size_t others = 0;
    std::size_t crashed = 0;
    for (const Entry& e : recent_) {
      if (!e.used || e.task == task) continue;
      ++others;
      crashed += e.crashed ? 1 : 0;
    }
    return others >= kMinSample && static_cast<double>(crashed) >= kBackgroundShare * static_cast<double>(others);
  }

 private:
  static constexpr std::size_t kWindow = 64;
  static constexpr std::size_t kMinSample = 16;
  static constexpr double kBackgroundShare = 0.05;
  struct Entry {
    std::uint64_t task = 0;
    bool crashed = false;
    bool used = false;
  };
  std::array<Entry, kWindow> recent_{};
  std::size_t next_ = 0;
};

}  // namespace cbm
