#include "prompt_template.hpp"

#include <catch2/catch.hpp>

#include "pipeline.hpp"

using cbm::PromptSet;
using cbm::PromptTemplate;

TEST_CASE("placeholders are replaced and doubled braces are literal", "[prompt]") {
  auto t = PromptTemplate::parse("About {topic}: {{json}} from\n{sources}");
  REQUIRE(t.ok());
  CHECK(t->render("AI", "[1] x") == "About AI: {json} from\n[1] x");
  CHECK(t->uses_sources());
  CHECK_FALSE(PromptTemplate::parse("only {topic}")->uses_sources());
}

TEST_CASE("a topic containing braces is inserted verbatim, never re-expanded", "[prompt]") {
  auto t = PromptTemplate::parse("T={topic}");
  CHECK(t->render("{sources} {x}", "S") == "T={sources} {x}");
}

TEST_CASE("unbalanced braces and empty placeholders are errors naming them", "[prompt]") {
  CHECK_THAT(PromptTemplate::parse("a {} b").error().message, Catch::StartsWith("empty or nested placeholder"));
  CHECK_THAT(PromptTemplate::parse("a { b").error().message, Catch::StartsWith("unclosed '{' at offset 2"));
  CHECK_THAT(PromptTemplate::parse("a } b").error().message, Catch::StartsWith("unmatched '}' at offset 2"));
}

TEST_CASE("a prompt file overrides only the sections it names", "[prompt]") {
  auto set = PromptSet::from_file_text("# my prompts\n[analysis.user]\nJust {topic}.\n\n[search.user]\nfind {topic}\n");
  REQUIRE(set.ok());
  CHECK(set->analysis_user.render("X", "S") == "Just X.");
  CHECK(set->search_user.render("X", "") == "find X");
  CHECK(set->analysis_system.render("X", "S") == PromptSet::defaults().analysis_system.render("X", "S"));
}

TEST_CASE("a prompt file with an unknown section or a bad template names the line or section", "[prompt]") {
  CHECK_THAT(PromptSet::from_file_text("[analysis.usr]\nx").error().message,
             Catch::StartsWith("line 1: unknown section [analysis.usr]"));
  CHECK_THAT(PromptSet::from_file_text("[search.user]\n{no}pe}").error().message,
             Catch::StartsWith("[search.user]: unmatched '}'"));
  CHECK_THAT(PromptSet::from_file_text("stray text\n[search.user]\nx").error().message,
             Catch::StartsWith("line 1: text before the first [section]"));
}

TEST_CASE("sources are numbered with their media, date and link", "[prompt]") {
  std::vector<cbm::Source> s = {{"Title A", "https://a", "Media", "2025-01-02", "snippet"}};
  CHECK(cbm::format_sources(s, "") == "[1] Title A (Media, 2025-01-02) https://a\n    snippet\n");
  CHECK(cbm::format_sources({}, "") == "(no sources found)\n");
}

TEST_CASE("a field placeholder renders the row's field, a topic's braces stay verbatim", "[prompt][rows]") {
  auto t = PromptTemplate::parse("{topic} in {region} ({year}); {region} again");
  REQUIRE(t.ok());
  const cbm::Fields fields{{"region", "EU"}, {"year", "2024"}};
  CHECK(t->render("Tariffs {region}", "", fields) == "Tariffs {region} in EU (2024); EU again");
  CHECK(t->field_names() == std::vector<std::string>{"region", "year"});
}

TEST_CASE("a placeholder the input has no field for is refused, naming it and its section", "[prompt][rows]") {
  auto set = PromptSet::from_file_text("[search.user]\n{topic} {region}\n[analysis.user]\n{topic} {regoin}\n");
  REQUIRE(set.ok());
  CHECK(set->field_names() == std::vector<std::string>{"region", "regoin"});
  CHECK_FALSE(set->check_fields({"region", "regoin", "extra"}).has_value());
  const auto error = set->check_fields({"region"});
  REQUIRE(error.has_value());
  CHECK(error->message == "[analysis.user]: unknown placeholder {regoin}: the known ones are {topic}, {sources}, {region}");
  const auto text_input = set->check_fields({});
  REQUIRE(text_input.has_value());
  CHECK_THAT(text_input->message, Catch::StartsWith("[search.user]: unknown placeholder {region}"));
  CHECK_FALSE(PromptSet::defaults().check_fields({}).has_value());
}
