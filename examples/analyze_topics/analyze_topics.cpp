// analyze_topics: the library in use. Analyses the topics given on the command line against a
// BigModel-compatible server, prints each result the moment it is final (the callback), and, with
// --stop-after K, stops the run from another thread once K results are in: the rest are cancelled,
// and still reported.
//
//   BIGMODEL_API_KEY=... analyze_topics [--threading] [--stop-after K] BASE_URL TOPIC...
#include <concurrent_bigmodel/executor.hpp>

#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cbm = concurrent_bigmodel;

namespace {

const char* status_name(cbm::Status s) {
  switch (s) {
    case cbm::Status::succeeded:
      return "succeeded";
    case cbm::Status::failed:
      return "failed";
    case cbm::Status::cancelled:
      return "cancelled";
  }
  return "?";
}

int usage() {
  std::cerr << "usage: analyze_topics [--threading] [--stop-after K] BASE_URL TOPIC...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cbm::Config config;
  std::size_t stop_after = 0;  // 0: never
  std::vector<std::string> args(argv + 1, argv + argc);
  std::size_t i = 0;
  for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
    if (args[i] == "--threading") {
      config.mode = cbm::Mode::threading;
    } else if (args[i] == "--stop-after" && i + 1 < args.size()) {
      stop_after = std::stoul(args[++i]);
    } else {
      return usage();
    }
  }
  if (args.size() - i < 2) return usage();
  config.base_url = args[i++];
  const std::vector<std::string> topics(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  const char* key = std::getenv("BIGMODEL_API_KEY");
  config.api_key = key != nullptr ? key : "";
#ifdef ANALYZE_TOPICS_WORKER
  config.worker_executable = ANALYZE_TOPICS_WORKER;  // the build's worker, wherever it was installed
#endif
  config.concurrency = 2;
  config.delay = std::chrono::milliseconds(0);

  try {
    cbm::Executor executor(config);

    // The callback counts results; a watcher thread waits for the count to reach --stop-after and
    // stops the run (stop() is callable from any thread).
    std::mutex mu;
    std::condition_variable cv;
    std::size_t finished = 0;
    bool run_over = false;
    executor.on_result([&](const cbm::Result& r) {
      std::cout << "result " << r.id << " " << status_name(r.status) << " attempts=" << r.attempts << " topic=" << r.topic
                << (r.success() ? "" : " error=" + r.error_message()) << std::endl;
      std::lock_guard lock(mu);
      ++finished;
      cv.notify_all();
    });
    std::thread watcher([&] {
      if (stop_after == 0) return;
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return finished >= stop_after || run_over; });
      if (!run_over) {
        std::cout << "stopping after " << finished << " results" << std::endl;
        executor.stop();
      }
    });

    const cbm::Report report = executor.execute_concurrent(topics);
    {
      std::lock_guard lock(mu);
      run_over = true;
      cv.notify_all();
    }
    watcher.join();

    const cbm::Summary& s = report.summary;
    std::cout << "summary: " << s.total_tasks << " tasks, " << s.successful_tasks << " succeeded, " << s.failed_tasks
              << " failed, " << s.cancelled_tasks << " cancelled; " << report.results.size() << " results; exit status "
              << s.exit_status << std::endl;
    return s.exit_status;
  } catch (const std::exception& e) {
    std::cerr << "analyze_topics: " << e.what() << "\n";
    return 2;
  }
}
