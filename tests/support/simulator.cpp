#include "simulator.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <csignal>
#include <stdexcept>
#include <thread>

namespace cbm::test {

const std::vector<std::string>& all_modes() {
  static const std::vector<std::string> modes = {"multiprocessing", "threading", "asyncio"};
  return modes;
}

namespace {

std::size_t collect(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

}  // namespace

std::string supervisor_path() { return CBM_SUPERVISOR_PATH; }
std::string simulator_path() { return CBM_SIMULATOR_PATH; }

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

HttpReply http_request(const std::string& method, const std::string& url, const std::string& body,
                       const std::vector<std::string>& request_headers) {
  HttpReply reply;
  CURL* c = curl_easy_init();
  curl_slist* headers = nullptr;
  for (const auto& h : request_headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &collect);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &reply.headers);
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_cleanup(c);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) throw std::runtime_error("HTTP " + method + " " + url + ": " + curl_easy_strerror(rc));
  return reply;
}

int connect_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int port_of(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

std::string raw_exchange(int port, const std::string& request) {
  const int fd = connect_loopback(port);
  if (fd < 0) throw std::runtime_error("connection to port " + std::to_string(port) + " refused");
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    ::close(fd);
    throw std::runtime_error("the request could not be sent");
  }
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    reply.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return reply;
}

Simulator::Simulator(std::vector<std::string> extra_args) {
  const auto port_file = dir_ / "port";
  std::vector<std::string> argv = {simulator_path(), "--port", "0", "--port-file", port_file.string()};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  SpawnOptions opts;
  opts.output_dir = dir_.path();
  process_ = std::make_unique<Subprocess>(argv, opts);
  if (!eventually([&] { return std::filesystem::exists(port_file); })) {
    throw std::runtime_error("the simulator did not start: " + process_->err());
  }
  port_ = std::stoi(read_text(port_file));
}

Simulator::~Simulator() {
  process_->signal(SIGTERM);
  process_->wait_for(std::chrono::seconds(5));
}

std::string Simulator::base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/paas/v4"; }

rapidjson::Document Simulator::stats() const {
  rapidjson::Document d;
  const HttpReply r = http_request("GET", "http://127.0.0.1:" + std::to_string(port_) + "/stats");
  d.Parse(r.body.c_str());
  if (d.HasParseError() || !d.IsObject()) throw std::runtime_error("bad /stats: " + r.body);
  return d;
}

namespace {
std::int64_t member_of(const rapidjson::Document& d, const char* map, const std::string& key) {
  auto m = d.FindMember(map);
  if (m == d.MemberEnd() || !m->value.IsObject()) return 0;
  auto v = m->value.FindMember(key.c_str());
  return v == m->value.MemberEnd() ? 0 : v->value.GetInt64();
}
}  // namespace

std::int64_t Simulator::requests_total() const { return stats()["requests_total"].GetInt64(); }
std::int64_t Simulator::by_status(const std::string& status) const { return member_of(stats(), "by_status", status); }
std::int64_t Simulator::by_topic(const std::string& topic) const { return member_of(stats(), "by_topic", topic); }

bool RecordedRequest::is_web_search() const {
  return path.ends_with("/web_search");
}

rapidjson::Document RecordedRequest::json() const {
  rapidjson::Document d;
  d.Parse(body.c_str());
  if (d.HasParseError() || !d.IsObject())
    throw std::runtime_error("recorded body is not a JSON object: " + body);
  return d;
}

std::vector<RecordedRequest> Simulator::recent_requests() const {
  const rapidjson::Document d = stats();
  std::vector<RecordedRequest> out;
  for (const auto& r : d["recent_requests"].GetArray()) {
    out.push_back({r["path"].GetString(), r["user_agent"].GetString(), r["accept_language"].GetString(),
                   std::string(r["body"].GetString(), r["body"].GetStringLength())});
  }
  return out;
}

std::int64_t Simulator::batch_stat(const std::string& name) const {
  const rapidjson::Document d = stats();
  const auto batch = d.FindMember("batch");
  if (batch == d.MemberEnd()) throw std::runtime_error("/stats has no \"batch\"");
  const auto value = batch->value.FindMember(name.c_str());
  if (value == batch->value.MemberEnd()) throw std::runtime_error("/stats \"batch\" has no " + name);
  return value->value.GetInt64();
}

std::int64_t Simulator::batches_with_status(const std::string& status) const {
  const rapidjson::Document d = stats();
  const auto& by_status = d["batch"]["batches_by_status"];
  const auto value = by_status.FindMember(status.c_str());
  return value == by_status.MemberEnd() ? 0 : value->value.GetInt64();
}

void Simulator::batch_hold(const std::string& phase) const {
  const HttpReply r =
      http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/batch/hold?phase=" + phase);
  if (r.status != 200) throw std::runtime_error("/batch/hold: " + r.body);
}

void Simulator::batch_release() const {
  http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/batch/release");
}

HttpReply Simulator::upload_batch_file(const std::string& filename, const std::string& content,
                                       const std::string& purpose) const {
  const std::string boundary = "cbm-test-boundary-7d1e";
  std::string body;
  body.append("--").append(boundary).append("\r\n");
  body.append("Content-Disposition: form-data; name=\"purpose\"\r\n\r\n").append(purpose).append("\r\n");
  body.append("--").append(boundary).append("\r\n");
  body.append("Content-Disposition: form-data; name=\"file\"; filename=\"").append(filename).append("\"\r\n");
  body.append("Content-Type: application/octet-stream\r\n\r\n").append(content).append("\r\n");
  body.append("--").append(boundary).append("--\r\n");
  std::string content_type = "Content-Type: multipart/form-data; boundary=";
  content_type.append(boundary);
  std::string authorization = "Authorization: Bearer ";
  authorization.append(kTestKey);
  return http_request("POST", base_url() + "/files", body, {content_type, authorization});
}

void Simulator::reset_stats() const { http_request("POST", "http://127.0.0.1:" + std::to_string(port_) + "/stats/reset"); }

}  // namespace cbm::test
