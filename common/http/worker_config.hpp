// WorkerConfig: what a worker process needs to run the pipeline, sent by the supervisor as the first
// message on the worker's channel. It carries no secret: the API key reaches the worker through its
// environment (BIGMODEL_API_KEY), never through argv or shared memory.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "client_config.hpp"
#include "pipeline.hpp"
#include "result.hpp"
#include "result_codec.hpp"

namespace cbm {

struct WorkerConfig {
  ClientConfig client;  // api_key is not encoded
  PipelineConfig pipeline;
  std::chrono::milliseconds attempt_timeout{120000};
  bool trace = false;  // send each call's messages and output back (LangSmith tracing is on)
  // Attempts the worker runs at once on its event loop (--workers): the supervisor never sends more.
  static constexpr int kMaxAttempts = 1024;
  int attempts = 1;
};

std::string encode_worker_config(const WorkerConfig& c);
Result<WorkerConfig, DecodeError> decode_worker_config(std::string_view json);

}  // namespace cbm
