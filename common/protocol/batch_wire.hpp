// The Batch API as text (docs/protocol.md, "Batch API"): the JSONL request line this program writes,
// and the server's objects it reads back — a batch, a file, a list of either, and a line of an output
// or error file. Pure: no I/O. Every reader is bounded (bounded_json.hpp) and says what is wrong with
// a text it refuses, so a server's answer of any shape or size is an error value, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace cbm {

// The documented path a batch line's request goes to (bigmodel-api.md §5: `/v4/…`, not the SDK's `/v1/…`).
inline constexpr std::string_view kBatchEndpoint = "/v4/chat/completions";
// Limits of one input file: lines and bytes (the platform refuses more: HTTP 435 above 100 MB).
inline constexpr std::size_t kBatchMaxLines = 50000;
inline constexpr std::size_t kBatchMaxBytes = 100u << 20;
// A line of an output or error file longer than this is not read (the answer of one chat call; the
// online path's body cap is 8 MiB): only its first and last kBatchLineEdge bytes are kept, to name it.
inline constexpr std::size_t kBatchMaxOutputLine = 8u << 20;
inline constexpr std::size_t kBatchLineEdge = 4096;

// `{"custom_id":…,"method":"POST","url":"/v4/chat/completions","body":<body>}` and its newline.
// `body` is a chat completion's JSON request body, copied as is.
std::string batch_request_line(std::string_view custom_id, std::string_view body);

struct BatchRequestCounts {
  std::int64_t total = 0;
  std::int64_t completed = 0;
  std::int64_t failed = 0;
};

struct BatchLineError {
  std::string code;
  std::int64_t line = 0;
  std::string message;
};

struct BatchObject {
  std::string id;
  std::string status;  // validating, failed, in_progress, finalizing, completed, expired, cancelling, cancelled
  std::string input_file_id;
  std::string output_file_id;  // empty until there is one
  std::string error_file_id;
  BatchRequestCounts request_counts;
  std::vector<BatchLineError> errors;  // errors.data: why the file was refused (status failed)
  std::map<std::string, std::string> metadata;

  // The batch will not change any more: its files are what they will be.
  bool ended() const;
};

struct FileObject {
  std::string id;
  std::string filename;
  std::string purpose;
};

template <typename T>
struct ListPage {
  std::vector<T> data;
  bool has_more = false;
  std::string last_id;
};

// Each: the object, or why the text is not one ("status: expected string, got number").
Result<BatchObject, std::string> parse_batch_object(std::string_view text);
Result<FileObject, std::string> parse_file_object(std::string_view text);
Result<ListPage<BatchObject>, std::string> parse_batch_list(std::string_view text);
Result<ListPage<FileObject>, std::string> parse_file_list(std::string_view text);

// One line of an output or error file: the request's custom_id and the answer as the online call
// would have had it (status and body). An error-file line without `response` but with a top-level
// `error` reads as that error with status 0 (undocumented shape, docs/protocol.md).
struct BatchOutputLine {
  std::string custom_id;
  long status_code = 0;
  std::string body;  // the response body, re-serialized JSON
};
Result<BatchOutputLine, std::string> parse_batch_output_line(std::string_view line);
// The custom_id of an output line too long to read, from its first bytes (`head`) or else its last
// (`tail`): the first `"custom_id":"…"` of the head, the last of the tail (a string value without
// escapes, as this program writes them). nullopt when neither edge holds one.
std::optional<std::string> custom_id_at_edges(std::string_view head, std::string_view tail);

}  // namespace cbm
