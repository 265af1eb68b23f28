// BatchApi: the Batch API's calls (docs/protocol.md, "Batch API") — upload a JSONL file, create,
// retrieve, list and cancel a batch, list files, stream a file's content — each one blocking HTTP
// exchange on one persistent libcurl handle. Every failure is an ApiError classified by the one error
// table (exchange_error in bigmodel_client.hpp); the API key is sent only in the Authorization header
// and never appears in an error. Not thread-safe (one handle).
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api_error.hpp"
#include "batch_wire.hpp"
#include "client_config.hpp"
#include "result.hpp"

typedef void CURL;  // NOLINT: libcurl's own spelling

namespace cbm {

class BatchApi {
 public:
  // `timeout`: each call's whole exchange (an upload of 100 MB included). `stopping`, when given, is
  // asked about at least once a second during every call: true aborts the transfer (an ApiError of
  // kind cancelled), so a stop of the run does not wait for an upload or a download. So does
  // config.http.abort, when set.
  BatchApi(ClientConfig config, std::chrono::milliseconds timeout, std::function<bool()> stopping = {});
  ~BatchApi();
  BatchApi(const BatchApi&) = delete;
  BatchApi& operator=(const BatchApi&) = delete;

  // POST /files, multipart: `file` named `filename`, purpose=batch.
  Result<FileObject, ApiError> upload(const std::string& filename, const std::string& content);
  // POST /batches for `input_file_id`, with `metadata` (finds the batch again after a crash).
  Result<BatchObject, ApiError> create(const std::string& input_file_id,
                                       const std::map<std::string, std::string>& metadata);
  Result<BatchObject, ApiError> retrieve(const std::string& batch_id);
  Result<BatchObject, ApiError> cancel(const std::string& batch_id);
  // GET /batches?after=&limit=100 (one page).
  Result<ListPage<BatchObject>, ApiError> list_batches(const std::string& after);
  // GET /files?purpose=batch (assumed OpenAI-compatible, docs/protocol.md): nullopt when the server
  // has no such endpoint (HTTP 404 or 405).
  Result<std::optional<ListPage<FileObject>>, ApiError> list_files(const std::string& after);
  // GET /files/{id}/content, streamed: each line (without its newline) to `on_line` as it arrives. A
  // line longer than kBatchMaxOutputLine is not kept: `on_oversized` gets its first and last
  // kBatchLineEdge bytes (where its custom_id is), and the download goes on at the next line. A last
  // line without a newline counts.
  Result<bool, ApiError> download(
      const std::string& file_id, const std::function<void(std::string_view)>& on_line,
      const std::function<void(std::string_view head, std::string_view tail)>& on_oversized);

 private:
  struct Exchange;
  Result<std::string, ApiError> call(const std::string& method, const std::string& path,
                                     const std::string& body, bool multipart_file,
                                     const std::string& filename,
                                     const std::function<void(std::string_view)>& on_data, long* status_out);
  ApiError protocol_problem(const std::string& what, const std::string& detail) const;
  ApiError unusable_id(const std::string& what, const std::string& id) const;

  ClientConfig config_;
  std::string base_;
  std::chrono::milliseconds timeout_;
  std::function<bool()> stopping_;
  CURL* curl_;
};

}  // namespace cbm
