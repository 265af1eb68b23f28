#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace simulator {

// Every misbehaviour the simulator can inject. On the wire (markers, --fault-rate, /stats) each is known
// by fault_name(): k429_1302_retry_after is "429_1302_retry_after", kKillClient is "kill_client".
enum class Fault {
  k429_1302,
  k429_1302_retry_after,
  k429_1302_retry_after_ms,
  k429_1113,
  k429_1305,
  k401,
  k400_1301,
  k400_1261,
  k400_1211,
  k500_1234,
  k503,
  kHang,
  kDrip,
  kReset,
  kInvalidJson,
  kTruncatedJson,
  kOversize,
  kSensitive,
  kNetworkError,
  kSseError,
  kEmptyChoices,
  kWrongTypes,
  kKillClient,
  // The platform's answers (api_error.h, platform_error): finish reasons that cut the answer, every
  // documented error code, usage caps naming their reset. The parameterised ones carry a number.
  kLength,
  kContextExceeded,
  kEmptyContent,
  kUnrecognizedArgument,
  kCode,            // code_NNNN: the code's HTTP status and message, the code a JSON string
  kCodeInt,         // code_NNNN_int: the same, the code a JSON integer
  kCodeIn200,       // code_NNNN_in200: HTTP 200; a stream's `event: error` frame, else an {"error"} body
  kQuotaReset,      // quota_reset_Ns: 429 code 1308, "Your limit will reset at <now + N s, UTC+8>"
  kQuota1310Reset,  // quota_1310_reset_Ns: the same with code 1310
  // Hostile answers: what a server should never send, and the client must survive whole.
  kHugeError,  // huge_error: 400 code 1214 whose message is 5 MB
  kBadUtf8,    // bad_utf8: an answer whose content holds bytes that are not UTF-8
  kEchoKey,    // echo_key: an answer whose content quotes the request's bearer token
  kManyValues,  // many_values: a good answer with 3.5 million small values beside it (7 MB)
};
inline constexpr std::size_t kFaultCount = static_cast<std::size_t>(Fault::kManyValues) + 1;

// "429_1302", or for a parameterised fault its pattern ("code_NNNN", "quota_reset_Ns").
std::string_view fault_name(Fault fault);
// An unparameterised fault by its name (parameterised ones are read by find_marker only).
std::optional<Fault> fault_from_name(std::string_view name);

// A `[[fault:NAME]]` or `[[fault:NAME*K]]` marker found in a request's text.
struct FaultMarker {
  Fault fault;
  std::uint32_t param = 0;               // the number of a parameterised fault (the code, the seconds)
  std::optional<std::uint64_t> first_k;  // fault only the first K matching requests; nullopt: all of them
  std::string_view text;                 // the marker as written; points into the scanned text
};

// The first well-formed marker in `text`; markers naming an unknown fault are skipped.
std::optional<FaultMarker> find_marker(std::string_view text);

// Counts requests per (marker, topic) so that a `*K` marker faults exactly K times and then lets the same
// request through: "fails twice, then succeeds". Thread-safe.
class MarkerLedger {
 public:
  // True when this request must fault. Counts the request either way.
  bool should_fault(const FaultMarker& marker, std::string_view topic);
  void reset();

 private:
  std::mutex mutex_;
  std::unordered_map<std::string, std::uint64_t> seen_;
};

// Server-wide random faults (--fault-rate NAME=P[,NAME=P...]).
class FaultRates {
 public:
  FaultRates() = default;
  // Throws std::invalid_argument naming the bad entry; the probabilities must sum to at most 1.
  static FaultRates parse(std::string_view spec);

  // At most one fault per request, each with its configured probability. Thread-safe.
  std::optional<Fault> draw() const;

 private:
  std::vector<std::pair<Fault, double>> rates_;
};

}  // namespace simulator
