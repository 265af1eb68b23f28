#pragma once

#include <array>
#include <boost/asio/basic_stream_socket.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api_error.h"
#include "batch_store.h"
#include "chat_request.h"
#include "completion.h"
#include "concurrency_limiter.h"
#include "faults.h"
#include "simulator_state.h"
#include "stats.h"

namespace simulator {

// One HTTP/1.1 connection: reads a request, answers it, and repeats while the client keeps the connection
// alive. A session runs only on its socket's io_context, one thread, so it needs no locking. The shared_ptr
// captured by its one pending operation keeps it alive; it dies with the connection.
class Session : public std::enable_shared_from_this<Session> {
 public:
  // Concrete executors rather than any_io_executor: no type erasure on the hot path.
  using Socket =
      boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

  Session(Socket socket, SimulatorState& state);

  // Begins reading on the socket's own io_context; callable from any thread.
  void start();

 private:
  using ErrorCode = boost::system::error_code;
  using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock,
                                                  boost::asio::wait_traits<std::chrono::steady_clock>,
                                                  boost::asio::io_context::executor_type>;
  using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;
  using Head = boost::beast::http::response<boost::beast::http::empty_body>;
  using HeadSerializer = boost::beast::http::response_serializer<boost::beast::http::empty_body>;

  // A header added to an answer, e.g. Retry-After.
  struct ExtraHeader {
    std::string_view name;
    std::string_view value;
  };

  // A chat request past the concurrency check: holds its slot and its in-flight count until answered.
  struct Admission {
    ConcurrencyLimiter::Slot slot;
    Stats::InFlight in_flight;
  };

  // Reading a request.
  void read_header();
  void on_header(ErrorCode ec);
  void read_body();
  void on_read_error(ErrorCode ec);

  // Deciding what to answer.
  void route();
  void handle_chat();
  void handle_web_search();
  void handle_runs_batch();
  // The Batch API (batch_store.h): /files and /batches under the API's base.
  void handle_batch_api(std::string_view path);
  // `download`: a file's content, which a download hold stops after half its body.
  void send_batch_reply(BatchStore::Reply answer, bool download = false);
  void answer_when_upload_released(BatchStore::Reply reply);
  void write_half_then_close();
  void write_half_then_wait_release();
  void write_rest_when_released();
  void record_request();
  // Authorization as the platform checks it; false when an error answer was sent.
  bool authorized();
  std::optional<Fault> choose_fault();
  void answer_chat();
  void end_admission();

  // Well-formed answers.
  void reply(unsigned status, std::string_view content_type, std::string body, ExtraHeader extra = {});
  void reply_error(const ApiError& error, ExtraHeader extra = {});
  void send_completion();
  std::vector<std::string> stream_frames(const Completion& completion, Shape shape) const;
  void send_stream(std::vector<std::string> frames);
  void send_events(std::vector<std::string> events);
  void error_in_200(const ApiError& error);
  void write_next_frame();

  // Misbehaving answers.
  void hang();
  void drip(std::string body);
  void drip_next_byte();
  void reset_midway(std::string body);
  void write_half_then_abort();
  void kill_client();

  // Connection plumbing.
  void prepare_head(unsigned status, std::string_view content_type,
                    std::optional<std::size_t> content_length);
  void write_head(void (Session::*next)());
  void on_written(ErrorCode ec);
  void drain_until_client_closes();
  void close();
  void abort();
  void note_outcome(unsigned status);

  Socket socket_;
  SimulatorState& state_;
  Timer timer_;
  boost::beast::flat_buffer buffer_;
  std::optional<Parser> parser_;  // single-use in Beast: re-created for every request
  bool keep_alive_ = true;
  bool is_chat_ = false;  // the current request is counted in the chat stats

  ChatRequest chat_request_;
  std::optional<Fault> fault_;
  std::uint32_t fault_param_ = 0;  // a parameterised fault's number (the code, the seconds)
  std::optional<Admission> admission_;
  std::optional<BatchStore::Activity> batch_activity_;  // an upload or download in progress
  std::optional<BatchStore::Activity> held_upload_;     // an upload stored, its answer held

  Response response_;
  Head head_;
  std::optional<HeadSerializer> head_serializer_;
  std::vector<std::string> frames_;  // SSE frames of a streamed answer
  std::size_t next_frame_ = 0;
  std::string raw_body_;  // body written by hand (drip, reset)
  std::size_t raw_sent_ = 0;
  std::array<char, 4096> discard_{};
};

}  // namespace simulator
