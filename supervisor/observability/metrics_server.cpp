#include "metrics_server.hpp"

#include <chrono>
#include <exception>
#include <utility>

namespace cbm {
namespace {

constexpr const char* kMetricsType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kPlainType = "text/plain; charset=utf-8";

// A scrape has no body and a monitor's server has few clients: small bounds.
constexpr HttpServer::Limits kLimits{64 * 1024, std::chrono::seconds(5), std::chrono::seconds(5), 16, 16};

HttpAnswer text(unsigned status, std::string body, std::string type = kPlainType, std::string allow = "") {
  return {status, std::move(body), std::move(type), std::move(allow), {}, false};
}

HttpAnswer answer(const IncomingRequest& request, const MetricsServer::Render& render) {
  if (request.method != "GET" && request.method != "HEAD") {
    return text(405, "method not allowed: use GET\n", kPlainType, "GET, HEAD");
  }
  if (request.target.substr(0, request.target.find('?')) != "/metrics") {
    return text(404, "not found: metrics are at /metrics\n");
  }
  try {
    return text(200, render(), kMetricsType);
  } catch (const std::exception&) {
    return text(500, "cannot render the metrics\n");
  }
}

}  // namespace

MetricsServer::MetricsServer(const ListenAddress& address, Render render)
    : render_(std::move(render)), server_(address, kLimits), url_(server_.url() + "/metrics") {
  server_.start([this](const IncomingRequest& request, HttpReply) { return answer(request, render_); });
}

}  // namespace cbm
