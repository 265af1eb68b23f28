#include "secret_scrubber.hpp"

#include <catch2/catch.hpp>

using cbm::scrub_secret;

TEST_CASE("every occurrence of the secret is redacted, the rest of the text kept", "[scrub]") {
  const std::string key = "sk-test-CANARY-5f3a9c1e";
  CHECK(scrub_secret("401: bad key " + key + " (Authorization: Bearer " + key + ")", key) ==
        "401: bad key [redacted] (Authorization: Bearer [redacted])");
  CHECK(scrub_secret(key + key, key) == "[redacted][redacted]");
  CHECK(scrub_secret("nothing secret here", key) == "nothing secret here");
}

TEST_CASE("an empty secret redacts nothing", "[scrub]") {
  CHECK(scrub_secret("any text", "") == "any text");
}

TEST_CASE("a secret that occurs in the redaction mark itself still ends", "[scrub]") {
  CHECK(scrub_secret("a-d", "d") == "a-[redacted]");
  CHECK(scrub_secret("dd", "d") == "[redacted][redacted]");
}
