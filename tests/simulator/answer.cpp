#include "answer.h"

#include <chrono>
#include <string>

namespace simulator {
namespace {
constexpr std::size_t kOversizeContentBytes = 9 * 1024 * 1024;
}  // namespace

std::optional<Fault> marker_fault(const ChatRequest& request, MarkerLedger& ledger, std::uint32_t& param) {
  auto marker = find_marker(request.last_user_message);
  if (!marker && request.web_search && request.web_search->query)
    marker = find_marker(*request.web_search->query);
  if (marker && ledger.should_fault(*marker, request.topic())) {
    param = marker->param;
    return marker->fault;
  }
  return std::nullopt;
}

std::optional<ApiError> fault_error(Fault fault, std::uint32_t param, bool stream) {
  switch (fault) {
    case Fault::k429_1302:
    case Fault::k429_1302_retry_after:
    case Fault::k429_1302_retry_after_ms:
      return api_errors::too_many_in_flight();
    case Fault::k429_1113:
      return api_errors::no_balance();
    case Fault::k429_1305:
      return api_errors::overloaded();
    case Fault::k401:
      return api_errors::invalid_token();
    case Fault::k400_1301:
      return api_errors::unsafe_content();
    case Fault::k400_1261:
      return api_errors::prompt_too_long();
    case Fault::k400_1211:
      return api_errors::unknown_model();
    case Fault::k500_1234:
      return api_errors::network_error();
    case Fault::kSseError:
      if (stream) return std::nullopt;
      return api_errors::network_error();
    case Fault::kCode:
    case Fault::kCodeInt:
    case Fault::kCodeIn200:
      return platform_error(param);
    case Fault::kQuotaReset:
    case Fault::kQuota1310Reset:
      return quota_reset(fault == Fault::kQuotaReset ? 1308 : 1310, quota_reset_time(param));
    case Fault::kHugeError:
      return ApiError{400, "1214", std::string(5u << 20, 'E')};
    default:
      return std::nullopt;
  }
}

Completion faulted_completion(const ChatRequest& request, std::optional<Fault> fault,
                              std::size_t content_bytes, std::string_view bearer) {
  Completion completion = make_completion(request, content_bytes);
  if (fault == Fault::kSensitive) {
    completion.content.clear();
    completion.finish_reason = "sensitive";
  } else if (fault == Fault::kNetworkError) {
    completion.finish_reason = "network_error";
  } else if (fault == Fault::kLength || fault == Fault::kContextExceeded) {
    completion.content.resize(completion.content.size() / 2);
    completion.finish_reason = fault == Fault::kLength ? "length" : "model_context_window_exceeded";
  } else if (fault == Fault::kEmptyContent) {
    completion.content = " \n ";
  } else if (fault == Fault::kBadUtf8) {
    completion.content += " bad bytes: \xC3\x28 \xFF\xFE and a cut \xE2\x82";
  } else if (fault == Fault::kEchoKey) {
    completion.content += " (you sent ";
    completion.content += bearer;
    completion.content += ")";
  } else if (fault == Fault::kOversize) {
    completion.content.assign(kOversizeContentBytes, 'x');
    completion.usage.completion_tokens = tokens_for(completion.content.size());
  }
  return completion;
}

std::chrono::system_clock::time_point quota_reset_time(std::uint32_t seconds) {
  return std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now()) +
         std::chrono::seconds(1 + seconds);
}

Shape fault_shape(std::optional<Fault> fault) {
  if (fault == Fault::kEmptyChoices) return Shape::kEmptyChoices;
  if (fault == Fault::kWrongTypes) return Shape::kWrongTypes;
  return Shape::kNormal;
}

}  // namespace simulator
