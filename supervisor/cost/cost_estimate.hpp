// The dry run (--dry-run): what a run of this configuration over this input would send, and what it
// would cost, without sending anything. It reads the input as a run does (the same sources, invalid
// lines skipped, repeated topics analysed once), renders each topic's prompts with the run's
// templates, and counts requests per step and model (pipeline.hpp: a search step via the tool is a chat
// call of the tool model, via the API a Web Search API call, none with --no-search; then the analysis
// by the chat model). One topic at a time: a huge file takes constant memory (only repeated topics'
// keys are held, as in a run). Token figures are estimates (estimate_tokens; docs/cost.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "price_table.hpp"
#include "run_config.hpp"
#include "spend.hpp"

namespace cbm {

// Tokens in `text`, conservatively: one per non-ASCII character (a CJK character is at most about one
// GLM token), one per three ASCII bytes (English runs near four).
std::int64_t estimate_tokens(std::string_view text);

// What the dry run assumes where it cannot measure (docs/cost.md).
inline constexpr std::int64_t kMessageOverheadTokens = 4;    // role and framing, per message
inline constexpr std::int64_t kTypicalSearchSummary = 300;   // the tool model's answer to the search step
inline constexpr std::int64_t kTypicalAnalysis = 800;       // an analysis
inline constexpr std::int64_t kSourceOverheadChars = 120;   // a source's title, media, date and link

struct StepEstimate {
  std::string step;   // "search" | "analysis"
  std::string model;  // the chat model, or the search engine of a Web Search API call
  std::string kind;   // "chat" | "web_search_api"
  std::uint64_t requests = 0;
  std::int64_t input_tokens = 0;
  std::int64_t output_tokens_likely = 0;
  std::int64_t output_tokens_max = 0;
};

struct CostEstimate {
  std::uint64_t topics = 0;      // distinct topics of one round, after invalid lines and repeats
  std::uint64_t repeated = 0;    // repeated occurrences (reported as copies, not sent)
  std::uint64_t invalid_lines = 0;
  int iterations = 1;            // rounds the figures cover (0: per round of an endless monitor)
  std::vector<StepEstimate> steps;
  Spend likely;   // with typical output lengths
  Spend at_most;  // with every answer at --max-tokens
};

// Throws as a run's start does: std::invalid_argument (a prompt placeholder the input lacks, a CSV
// header), std::runtime_error (a file that cannot be opened).
CostEstimate estimate_run(const RunConfig& config);

// Batch calls cost this share of list price (bigmodel-api.md section 5); web searches do not change.
inline constexpr double kBatchPriceFactor = 0.5;

// The estimate as text for the console, and as the JSON `--output` gets.
std::string estimate_text(const CostEstimate& e, const RunConfig& config);
std::string estimate_json(const CostEstimate& e, const RunConfig& config);

}  // namespace cbm
