#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cbm {
namespace {

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

std::string write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) return errno_text("cannot create a temporary file in '" + dir.string() + "'");
  auto fail = [&](const std::string& what) {
    std::string message = errno_text(what);
    ::close(fd);
    ::unlink(tmpl.c_str());
    return message;
  };
  const char* p = content.data();
  std::size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write '" + tmpl + "'");
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0) return fail("cannot chmod '" + tmpl + "'");
  if (::fsync(fd) != 0) return fail("cannot fsync '" + tmpl + "'");
  if (::close(fd) != 0) {
    std::string message = errno_text("cannot close '" + tmpl + "'");
    ::unlink(tmpl.c_str());
    return message;
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    std::string message = errno_text("cannot rename '" + tmpl + "' to '" + path.string() + "'");
    ::unlink(tmpl.c_str());
    return message;
  }
  // The rename is durable only once the directory entry is.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace cbm
