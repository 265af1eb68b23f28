// BatchRecord: a Batch API file's and batch's ids as the journal keeps them (journal.hpp), so that
// --resume after a kill -9 at any moment never uploads or pays for a line twice (docs/protocol.md,
// "Batch API"). One journal line per step, each written and synced before the call it announces
// (intent) or right after the id exists:
//   {"batch":{"token":T,"seq":N,"state":"file_uploading","file":"cbm-T-N.jsonl","model":M,"custom_ids":[...]}}
//   {"batch":{"token":T,"seq":N,"state":"uploaded","file_id":F}}
//   {"batch":{"token":T,"seq":N,"state":"created","batch_id":B}}
//   {"batch":{"token":T,"seq":N,"state":"abandoned"}}      (its lines went elsewhere: nothing was paid)
// "abandoned" is written only when the platform clearly did not take the file or the batch (a 4xx, or
// an upload that never got an id); a later "created" of the same file (its batch found by --resume
// after all) overrides it.
// (token, seq) names one file; the token is unique to the process that wrote it, and is in the file's
// name and in the batch's metadata, so a file or batch whose id was not recorded is found by listing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cbm {

enum class BatchState { file_uploading, uploaded, created, abandoned };
std::string_view to_string(BatchState s);

struct BatchRecord {
  std::string token;
  std::uint64_t seq = 0;
  BatchState state = BatchState::file_uploading;
  std::string file;                     // file_uploading: the file's name
  std::string model;                    // file_uploading
  std::vector<std::string> custom_ids;  // file_uploading: the file's lines
  std::string file_id;                  // uploaded
  std::string batch_id;                 // created
};

std::string encode_batch_record(const BatchRecord& r);
// nullopt when `line` is not a batch record this program wrote.
std::optional<BatchRecord> decode_batch_record(std::string_view line);

// A line's custom_id: "<round>-<task id>" (unique within a run, the same for every attempt of a task).
std::string batch_custom_id(std::uint32_t round, std::uint64_t id);
// The round and task id of a custom_id this program made; nullopt for anything else.
std::optional<std::pair<std::uint32_t, std::uint64_t>> parse_batch_custom_id(std::string_view custom_id);

// What the journal's records of one file add up to (the last state wins, except that "created" clears
// "abandoned"; ids accumulate).
struct RestoredBatch {
  std::string token;
  std::uint64_t seq = 0;
  std::string file;
  std::string model;
  std::vector<std::string> custom_ids;
  std::string file_id;
  std::string batch_id;
  bool abandoned = false;
};
// Folds the journal's batch lines (in file order) by (token, seq), one entry a file in the order of
// its first record: when a custom_id is in more than one file, the later entry is the newer file
// (tokens are random, so (token, seq) says nothing of age). Lines that do not decode are skipped.
std::vector<RestoredBatch> fold_batch_records(const std::vector<std::string>& lines);

}  // namespace cbm
