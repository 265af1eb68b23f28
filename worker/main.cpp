// concurrent_bigmodel_worker: a dumb, restartable loop (s6/runit style). It receives its config, then
// tasks, over the shared-memory channel its supervisor created, runs one pipeline attempt per task and
// sends the outcome back. All judgement (retries, timeouts, restarts) lives in the supervisor.
//
// Usage (by the supervisor only): concurrent_bigmodel_worker --channel NAME --fd N --slot S
// The API key comes from BIGMODEL_API_KEY in the environment.
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "bigmodel_client.hpp"
#include "pipeline.hpp"
#include "result_codec.hpp"
#include "shm_channel.hpp"
#include "worker_config.hpp"

namespace {

constexpr int kExitBadUsage = 2;
constexpr int kExitChannel = 4;

struct Args {
  std::string channel;
  int fd = -1;
  int slot = -1;
};

std::optional<Args> parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--channel") {
      a.channel = value;
    } else if (flag == "--fd") {
      a.fd = std::atoi(value);
    } else if (flag == "--slot") {
      a.slot = std::atoi(value);
    } else {
      return std::nullopt;
    }
  }
  if (a.channel.empty() || a.fd < 0 || a.slot < 0 || argc % 2 == 0) return std::nullopt;
  return a;
}

int serve(cbm::WorkerChannel& channel) {
  auto first = channel.receive();
  if (!first) return kExitChannel;
  auto config = cbm::decode_worker_config(*first);
  if (!config) {
    std::fprintf(stderr, "concurrent_bigmodel_worker: %s\n", config.error().message.c_str());
    return kExitChannel;
  }
  const char* key = std::getenv("BIGMODEL_API_KEY");
  config->client.api_key = key != nullptr ? key : "";

  cbm::CurlGlobal curl;
  cbm::BigModelClient client(config->client);
  cbm::Pipeline pipeline(config->pipeline, client);
  while (auto message = channel.receive()) {
    auto task = cbm::decode_task(*message);
    if (!task) {
      std::fprintf(stderr, "concurrent_bigmodel_worker: %s\n", task.error().message.c_str());
      return kExitChannel;
    }
    const auto outcome = pipeline.run(task.value(), cbm::Clock::now() + config->attempt_timeout);
    if (channel.send(cbm::encode_outcome(task->id, task->attempt, outcome)) != cbm::SendResult::kAccepted) {
      return kExitChannel;
    }
  }
  // The supervisor closed the channel (or is gone): a normal end.
  return channel.status() == cbm::ChannelStatus::kPeerGone ? 0 : kExitChannel;
}

}  // namespace

int main(int argc, char** argv) {
  // Die with the supervisor even if it is SIGKILLed; the getppid() check closes the race with a
  // supervisor that died before the prctl.
  const pid_t parent = ::getppid();
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (parent == 1) return kExitChannel;

  // The supervisor blocks TERM/INT/HUP/USR1 for its signal thread; a worker takes them by default.
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto args = parse_args(argc, argv);
  if (!args) {
    std::fprintf(stderr, "usage: concurrent_bigmodel_worker --channel NAME --fd N --slot S (started by concurrent_bigmodel)\n");
    return kExitBadUsage;
  }
  try {
    cbm::WorkerChannel channel(args->channel, args->fd);
    return serve(channel);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concurrent_bigmodel_worker[%d]: %s\n", args->slot, e.what());
    return kExitChannel;
  }
}
