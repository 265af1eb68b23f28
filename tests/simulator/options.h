#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "faults.h"
#include "latency.h"

namespace CLI {
class App;
}

namespace simulator {

// How POST /runs/batch misbehaves, for LangSmith outage tests.
enum class RunsFault { kNone, kHang, k500 };

// The simulator's configuration, from the command line. Immutable once the server starts.
struct Options {
  std::string host = "127.0.0.1";
  unsigned short port = 0;  // 0: an ephemeral port
  std::string port_file;    // written atomically once listening; empty: not written
  unsigned threads = 2;     // io threads
  LatencyModel latency;
  std::string api_key;                // empty: any non-empty bearer token is accepted
  std::size_t concurrency_limit = 0;  // chat requests in flight per API key; 0: unlimited
  FaultRates fault_rates;
  std::size_t content_bytes = 600;
  std::vector<std::string> models;  // default: the documented models (common/protocol/request_settings.hpp)
  std::size_t max_body = 4 * 1024 * 1024;
  bool verbose = false;
  std::string langsmith_api_key;  // the only accepted x-api-key on /runs/batch; empty: any or none
  // An org-scoped key's workspace: /runs/batch without `X-Tenant-Id: <it>` is refused with 403, as
  // LangSmith refuses such a key without a workspace. Empty: no header needed.
  std::string langsmith_workspace;
  RunsFault runs_fault = RunsFault::kNone;
  bool strict_openai = false;
  // The Batch API (batch_store.h): a batch's time from validating to completed, the upload cap (above it
  // HTTP 435), and the phase held from the start (BatchStore::hold_phases(); empty or "none": no hold).
  double batch_seconds = 1.0;
  std::size_t batch_max_file_bytes = std::size_t{100} * 1024 * 1024;
  std::size_t batch_max_lines = 50000;  // per file, as documented; above it validation fails
  std::string batch_hold;  // answer unknown request fields as api.openai.com does; no /web_search
};

// Declares every flag on `app` (with the fault markers in its --help); parsing `app` fills `options`.
void add_options(CLI::App& app, Options& options);

}  // namespace simulator
