// The Batch API's text (batch_wire.hpp) and the journal's batch records (batch_record.hpp).
#include "batch_wire.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "batch_record.hpp"
#include "journal.hpp"

namespace {

std::filesystem::path temp_dir() {
  auto dir = std::filesystem::temp_directory_path() / ("cbm_batch_wire_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

TEST_CASE("a batch request line is the documented envelope around the chat body", "[batch]") {
  const std::string line = cbm::batch_request_line("1-7", R"({"model":"glm-4-flash","messages":[]})");
  CHECK(line == R"({"custom_id":"1-7","method":"POST","url":"/v4/chat/completions","body":{"model":"glm-4-flash","messages":[]}})"
                "\n");
}

TEST_CASE("a batch object is read with its counts, errors and metadata", "[batch]") {
  const auto b = cbm::parse_batch_object(R"({"id":"batch_1","object":"batch","status":"failed",
    "input_file_id":"f1","output_file_id":null,"error_file_id":"f3",
    "request_counts":{"total":3,"completed":1,"failed":2},
    "errors":{"data":[{"code":"1214","line":2,"message":"bad field","param":null}]},
    "metadata":{"cbm_token":"abc","cbm_seq":"4"}})");
  REQUIRE(b.ok());
  CHECK(b->id == "batch_1");
  CHECK(b->status == "failed");
  CHECK(b->ended());
  CHECK(b->output_file_id.empty());
  CHECK(b->error_file_id == "f3");
  CHECK(b->request_counts.total == 3);
  CHECK(b->request_counts.failed == 2);
  REQUIRE(b->errors.size() == 1);
  CHECK(b->errors[0].code == "1214");
  CHECK(b->errors[0].line == 2);
  CHECK(b->metadata.at("cbm_token") == "abc");
}

TEST_CASE("batch objects of the wrong shape are refused with the reason", "[batch]") {
  CHECK(cbm::parse_batch_object("[]").error() == "not a JSON object");
  CHECK(cbm::parse_batch_object(R"({"id":"b"})").error() == "status: missing");
  CHECK(cbm::parse_batch_object(R"({"id":"b","status":3})").error().find("status") != std::string::npos);
  CHECK_FALSE(cbm::parse_batch_object(std::string(100, '[')).ok());
  CHECK_FALSE(cbm::parse_batch_object("{").ok());
  const auto in_progress = cbm::parse_batch_object(R"({"id":"b","status":"in_progress"})");
  REQUIRE(in_progress.ok());
  CHECK_FALSE(in_progress->ended());
}

TEST_CASE("batch and file lists are read page by page", "[batch]") {
  const auto batches = cbm::parse_batch_list(
      R"({"object":"list","data":[{"id":"b1","status":"completed"},{"id":"b2","status":"validating"}],
          "first_id":"b1","last_id":"b2","has_more":true})");
  REQUIRE(batches.ok());
  CHECK(batches->data.size() == 2);
  CHECK(batches->has_more);
  CHECK(batches->last_id == "b2");
  const auto files = cbm::parse_file_list(R"({"object":"list","data":[{"id":"f1","filename":"cbm-x-1.jsonl"}]})");
  REQUIRE(files.ok());
  CHECK(files->data.at(0).filename == "cbm-x-1.jsonl");
  CHECK_FALSE(cbm::parse_batch_list(R"({"data":[{"id":"b1"}]})").ok());
  CHECK_FALSE(cbm::parse_file_list(R"({"object":"list"})").ok());
}

TEST_CASE("an output line gives its custom_id, status and body, and so does an error line", "[batch]") {
  const auto ok = cbm::parse_batch_output_line(
      R"({"response":{"status_code":200,"body":{"id":"r","choices":[],"request_id":"615-1-2"}},"custom_id":"1-2","id":"batch_1"})");
  REQUIRE(ok.ok());
  CHECK(ok->custom_id == "1-2");
  CHECK(ok->status_code == 200);
  CHECK(ok->body == R"({"id":"r","choices":[],"request_id":"615-1-2"})");
  const auto failed = cbm::parse_batch_output_line(
      R"({"response":{"status_code":400,"body":{"error":{"code":"1301","message":"unsafe"}}},"custom_id":"1-3"})");
  REQUIRE(failed.ok());
  CHECK(failed->status_code == 400);
  CHECK(failed->body.find("1301") != std::string::npos);
  const auto bare = cbm::parse_batch_output_line(R"({"custom_id":"1-4","error":{"code":"500","message":"x"}})");
  REQUIRE(bare.ok());
  CHECK(bare->status_code == 0);
  CHECK(cbm::parse_batch_output_line(R"({"response":{"status_code":200,"body":{}}})").error() == "custom_id: missing");
  CHECK_FALSE(cbm::parse_batch_output_line(R"({"custom_id":"1-5"})").ok());
  CHECK_FALSE(cbm::parse_batch_output_line("not json").ok());
}

TEST_CASE("batch journal records round-trip and fold to each file's last state", "[batch]") {
  cbm::BatchRecord intent;
  intent.token = "t1";
  intent.seq = 3;
  intent.file = "cbm-t1-3.jsonl";
  intent.model = "glm-4-flash";
  intent.custom_ids = {"1-0", "1-1"};
  const std::string line = cbm::encode_batch_record(intent);
  CHECK(cbm::is_batch_journal_line(line));
  CHECK(line.find("\"status\":\"") == std::string::npos);  // Journal::inspect counts results by it
  const auto back = cbm::decode_batch_record(line);
  REQUIRE(back);
  CHECK(back->custom_ids == intent.custom_ids);
  CHECK(back->state == cbm::BatchState::file_uploading);

  cbm::BatchRecord uploaded{"t1", 3, cbm::BatchState::uploaded, "", "", {}, "file_9", ""};
  cbm::BatchRecord created{"t1", 3, cbm::BatchState::created, "", "", {}, "", "batch_9"};
  cbm::BatchRecord other{"t2", 1, cbm::BatchState::file_uploading, "cbm-t2-1.jsonl", "m", {"1-5"}, "", ""};
  cbm::BatchRecord gone{"t2", 1, cbm::BatchState::abandoned, "", "", {}, "", ""};
  const auto folded = cbm::fold_batch_records({line, cbm::encode_batch_record(uploaded), "{\"batch\":{}}",
                                               cbm::encode_batch_record(created), cbm::encode_batch_record(other),
                                               cbm::encode_batch_record(gone)});
  REQUIRE(folded.size() == 2);
  const auto& first = folded.at(0);
  CHECK(first.token == "t1");
  CHECK(first.file_id == "file_9");
  CHECK(first.batch_id == "batch_9");
  CHECK(first.custom_ids.size() == 2);
  CHECK_FALSE(first.abandoned);
  CHECK(folded.at(1).token == "t2");
  CHECK(folded.at(1).abandoned);
}

TEST_CASE("folded batch files come in the order the journal first names them, not by token", "[batch]") {
  // Run "zz" wrote first, run "aa" (a --resume) put the same line into a newer file: the newer comes last.
  const cbm::BatchRecord older{"zz", 7, cbm::BatchState::file_uploading, "cbm-zz-7.jsonl", "m", {"1-0"},
                               "",   ""};
  const cbm::BatchRecord newer{"aa", 1, cbm::BatchState::file_uploading, "cbm-aa-1.jsonl", "m", {"1-0"},
                               "",   ""};
  const cbm::BatchRecord older_created{"zz", 7, cbm::BatchState::created, "", "", {}, "", "batch_old"};
  const auto folded =
      cbm::fold_batch_records({cbm::encode_batch_record(older), cbm::encode_batch_record(newer),
                               cbm::encode_batch_record(older_created)});
  REQUIRE(folded.size() == 2);
  CHECK(folded[0].token == "zz");
  CHECK(folded[0].batch_id == "batch_old");
  CHECK(folded[1].token == "aa");
}

TEST_CASE("a batch record 'created' after 'abandoned' means the batch exists", "[batch]") {
  const cbm::BatchRecord intent{"t", 1, cbm::BatchState::file_uploading, "cbm-t-1.jsonl", "m", {"1-0"},
                                "",  ""};
  const cbm::BatchRecord gone{"t", 1, cbm::BatchState::abandoned, "", "", {}, "", ""};
  const cbm::BatchRecord created{"t", 1, cbm::BatchState::created, "", "", {}, "", "batch_1"};
  const auto folded = cbm::fold_batch_records(
      {cbm::encode_batch_record(intent), cbm::encode_batch_record(gone), cbm::encode_batch_record(created)});
  REQUIRE(folded.size() == 1);
  CHECK_FALSE(folded[0].abandoned);
  CHECK(folded[0].batch_id == "batch_1");
}

TEST_CASE("a custom_id names its round and task and reads back", "[batch]") {
  CHECK(cbm::batch_custom_id(3, 41) == "3-41");
  const auto back = cbm::parse_batch_custom_id("3-41");
  REQUIRE(back);
  CHECK(back->first == 3u);
  CHECK(back->second == 41u);
  for (const char* bad : {"", "3", "3-", "-4", "3-4x", "a-1", "1-2-3"})
    CHECK_FALSE(cbm::parse_batch_custom_id(bad));
}

TEST_CASE("the journal keeps batch lines through --resume and hands them back", "[batch]") {
  const auto dir = temp_dir();
  const auto path = dir / "batch.journal.jsonl";
  cbm::JournalSettings settings;
  const cbm::BatchRecord r{"t", 1, cbm::BatchState::created, "", "", {}, "", "batch_1"};
  {
    auto j = cbm::Journal::create(path, settings);
    j.append_batch_line(cbm::encode_batch_record(r));
    j.sync();
  }
  for (int pass = 0; pass < 2; ++pass) {  // a second resume still finds it
    std::vector<std::string> batch_lines;
    int results = 0;
    auto j = cbm::Journal::open_for_resume(
        path, settings, false, [&](const cbm::TaskResult&) { ++results; }, {},
        [&](std::string_view line) { batch_lines.emplace_back(line); });
    CHECK(results == 0);
    REQUIRE(batch_lines.size() == 1);
    CHECK(cbm::decode_batch_record(batch_lines[0])->batch_id == "batch_1");
  }
  const auto found = cbm::Journal::inspect(path);
  REQUIRE(found);
  CHECK(found->results == 0);  // a batch line is no result
  std::filesystem::remove_all(dir);
}

TEST_CASE("the custom_id of an output line too long to read is found at either edge", "[batch]") {
  // The platform's order (custom_id first) and the simulator's (custom_id after the response).
  CHECK(cbm::custom_id_at_edges(R"({"id":"r1","custom_id":"1-7","response":{"body":{"x":")", "\"}}}") ==
        std::optional<std::string>("1-7"));
  CHECK(cbm::custom_id_at_edges(R"({"response":{"status_code":200,"body":{"c":")",
                                R"(xxxx"}},"custom_id" : "2-3","id":"b-3"})") ==
        std::optional<std::string>("2-3"));
  // Cut in the middle of its value, or escaped inside a string: not a custom_id.
  CHECK_FALSE(cbm::custom_id_at_edges(R"({"custom_id":"1-)", "xxxx"));
  CHECK_FALSE(cbm::custom_id_at_edges(R"({"body":"say \"custom_id\":\"9-9\" ...)", "..."));
}
