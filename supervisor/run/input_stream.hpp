// InputStream: a topics file opened once, read through a FILE* that honours a stop request.
//
// The path is opened once (O_NONBLOCK, so a FIFO without a writer cannot block the open) and what it
// is decides how it is read (README "Topics files"):
//   a directory           refused: std::invalid_argument naming it (a usage error, exit 2);
//   a regular file        streamed; it may be read again from its start (rewind()) on the same
//                         descriptor, so a file replaced meanwhile is not mixed in;
//   anything else         (a pipe, a FIFO, a character device such as /dev/zero, a socket) read once:
//                         the caller holds its rows in memory (topic_source.hpp, read_held_input).
//
// Reads never block past a stop: the FILE*'s read function waits for data with poll() in slices of
// kStopPollInterval and reads at most kReadChunk bytes at a time, asking `stop` before each; once
// `stop` says yes, the stream ends (EOF) and stopped() tells it apart from the input's own end. A
// FIFO whose writer has not come yet is waited for (never an end) until a stop; one exception: a
// writer that opened the FIFO before the reader did and closed it without writing a byte is not seen
// to leave (Linux raises no POLLHUP for it), so the read waits for another writer, or a stop.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>

namespace cbm {

using StopCheck = std::function<bool()>;

inline constexpr std::chrono::milliseconds kStopPollInterval{20};
inline constexpr std::size_t kReadChunk = 64 * 1024;

class InputStream {
 public:
  // Throws std::invalid_argument for a directory, std::runtime_error when the path cannot be opened.
  InputStream(const std::string& path, StopCheck stop);
  ~InputStream();
  InputStream(const InputStream&) = delete;
  InputStream& operator=(const InputStream&) = delete;

  const std::string& path() const { return path_; }
  bool regular() const { return regular_; }
  std::FILE* file() const { return file_; }
  // The last read ended because `stop` said so (not at the input's end).
  bool stopped() const;
  // A regular file only: back to its start for another pass, which no longer asks `stop` (the
  // engine that drives the round decides what it reads after a stop).
  void rewind();

  struct State;  // what the FILE*'s read functions see (input_stream.cpp)

 private:
  std::string path_;
  bool regular_ = false;
  std::unique_ptr<State> state_;
  std::FILE* file_ = nullptr;
};

// What a path is, without opening it (a FIFO's open would be a reader its writer sees): "" when a
// topics file may be read from it, else why not ("is a directory", "does not exist: ...").
std::string input_path_problem(const std::string& path);

}  // namespace cbm
