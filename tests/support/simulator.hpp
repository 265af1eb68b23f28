// Test support: the BigModel simulator as a fixture (a real server process on 127.0.0.1) and the
// paths of the binaries under test.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "subprocess.hpp"

namespace cbm::test {

// The key test runs are given: tests look for it wherever it must never appear.
inline constexpr const char* kTestKey = "sk-test-CANARY-5f3a9c1e";

// How a test starts the supervisor in `dir`: its output and working directory there, `key` as
// BIGMODEL_API_KEY, and no other key or base URL inherited from the environment.
inline SpawnOptions supervisor_spawn_options(const std::filesystem::path& dir, const std::string& key = kTestKey) {
  SpawnOptions opts;
  opts.output_dir = dir;
  opts.cwd = dir;
  opts.env["BIGMODEL_API_KEY"] = key;
  opts.unset_env = {"ZHIPUAI_API_KEY", "ZAI_API_KEY", "BIGMODEL_BASE_URL", "ZHIPUAI_BASE_URL",
                    "ZAI_BASE_URL"};
  return opts;
}

std::string supervisor_path();  // concurrent_bigmodel
std::string simulator_path();   // bigmodel_simulator

// Every --mode: the shared-behaviour tests run against each (GENERATE(from_range(all_modes()))).
const std::vector<std::string>& all_modes();

// Waits (polling, bounded) until `condition` holds; false on timeout. For conditions no event tells.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

struct HttpReply {
  long status = 0;
  std::string headers;  // the response's header lines, as received
  std::string body;
};
// `request_headers` are whole lines ("Authorization: Bearer x"). Throws on a transport failure.
HttpReply http_request(const std::string& method, const std::string& url, const std::string& body = {},
                       const std::vector<std::string>& request_headers = {});

// A TCP connection to 127.0.0.1:`port`; -1 when refused.
int connect_loopback(int port);
// The port of an http://HOST:PORT URL.
int port_of(const std::string& url);
// Sends `request` as is on a new connection, half-closes it, and returns everything the server answers
// before it closes (a hang guard stops reading after 5 s).
std::string raw_exchange(int port, const std::string& request);

// A request as it reached the simulator (its /stats "recent_requests").
struct RecordedRequest {
  std::string path;
  std::string user_agent;
  std::string accept_language;
  std::string body;

  bool is_web_search() const;        // POST .../web_search, else a chat completion
  rapidjson::Document json() const;  // the body, parsed (fails the test when it is not JSON)
};

class Simulator {
 public:
  explicit Simulator(std::vector<std::string> extra_args = {});
  ~Simulator();

  int port() const { return port_; }
  std::string base_url() const;  // http://127.0.0.1:PORT/api/paas/v4
  rapidjson::Document stats() const;
  // Shorthands over stats().
  std::int64_t requests_total() const;
  std::int64_t by_status(const std::string& status) const;
  std::int64_t by_topic(const std::string& topic) const;
  void reset_stats() const;
  // The last requests to the API (chat and web search), oldest first.
  std::vector<RecordedRequest> recent_requests() const;

  // The Batch API (docs/protocol.md, "Simulator: the Batch API").
  // A counter or gauge of /stats "batch": files_uploaded, bytes_uploaded, lines_uploaded, batches_created,
  // paid_lines (a line counted once per batch holding it), batches_cancelled, content_downloads,
  // uploads_in_progress, uploads_held (stored, the answer held), downloads_in_progress, files_stored.
  std::int64_t batch_stat(const std::string& name) const;
  // How many batches have `status` now (/stats "batch"."batches_by_status").
  std::int64_t batches_with_status(const std::string& status) const;
  // Holds uploads, batches at a phase, or downloads (upload|validating|in_progress|finalizing|download),
  // so a test can stop a client at a known moment; release() lets everything continue.
  void batch_hold(const std::string& phase) const;
  void batch_release() const;
  // POST /files as a client uploads: multipart/form-data with purpose and a `file` part named `filename`.
  HttpReply upload_batch_file(const std::string& filename, const std::string& content,
                              const std::string& purpose = "batch") const;

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};

}  // namespace cbm::test
