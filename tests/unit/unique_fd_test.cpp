#include "unique_fd.hpp"

#include <fcntl.h>

#include <catch2/catch.hpp>
#include <cerrno>

namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

struct Pipe {
  Pipe() { REQUIRE(::pipe2(fds, O_CLOEXEC) == 0); }
  int fds[2];
};

}  // namespace

TEST_CASE("a moved-to UniqueFd closes the descriptor it held and takes the other", "[unique_fd]") {
  const Pipe p;
  cbm::UniqueFd target(p.fds[0]);
  cbm::UniqueFd source(p.fds[1]);
  target = std::move(source);
  CHECK_FALSE(is_open(p.fds[0]));
  CHECK(target.get() == p.fds[1]);
  CHECK(source.get() == -1);  // NOLINT(bugprone-use-after-move): empty by contract
  CHECK(is_open(p.fds[1]));
}

TEST_CASE("moving a UniqueFd into itself keeps the descriptor open", "[unique_fd]") {
  const Pipe p;
  cbm::UniqueFd fd(p.fds[0]);
  cbm::UniqueFd& same = fd;
  fd = std::move(same);
  CHECK(fd.get() == p.fds[0]);
  CHECK(is_open(p.fds[0]));
  ::close(p.fds[1]);
}

TEST_CASE("a UniqueFd closes its descriptor when it goes, and not once released", "[unique_fd]") {
  const Pipe p;
  { cbm::UniqueFd gone(p.fds[0]); }
  CHECK_FALSE(is_open(p.fds[0]));
  int kept = -1;
  {
    cbm::UniqueFd released(p.fds[1]);
    kept = released.release();
  }
  CHECK(is_open(kept));
  ::close(kept);
}
