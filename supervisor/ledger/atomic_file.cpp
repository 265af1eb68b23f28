#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace cbm {
namespace {

std::filesystem::path dir_of(const std::filesystem::path& p) {
  return p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
}

// mkostemp's template for `target`: a hidden name in its directory, so the rename stays there. Appended,
// not `"." + name`: g++ 12 at -O3 misreads that prepend as an overlapping memcpy (-Wrestrict, GCC bug
// 105329).
std::string temp_template(const std::filesystem::path& target) {
  std::string name = ".";
  name += target.filename().string();
  name += ".XXXXXX";
  return (dir_of(target) / name).string();
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)), tmp_(temp_template(path_)) {
  const int fd = ::mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create a temporary file in '" + dir_of(path_).string() + "'");
  ::fchmod(fd, 0644);
  f_ = ::fdopen(fd, "w");
  if (f_ == nullptr) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw std::system_error(err, std::generic_category(), "fdopen");
  }
  buffer_ = std::make_unique<char[]>(kBufferSize);
  std::setvbuf(f_, buffer_.get(), _IOFBF, kBufferSize);
}

AtomicFile::~AtomicFile() {
  if (f_ != nullptr) {
    std::fclose(f_);
    ::unlink(tmp_.c_str());
  }
}

void AtomicFile::write(std::string_view data) {
  if (std::fwrite(data.data(), 1, data.size(), f_) != data.size()) failed_ = true;
}

void AtomicFile::commit() {
  const bool ok = !failed_ && std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int err = errno;
  const int closed = std::fclose(f_);
  f_ = nullptr;
  if (!ok || closed != 0) {
    ::unlink(tmp_.c_str());
    throw std::system_error(ok ? errno : err, std::generic_category(), "cannot write '" + tmp_ + "'");
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int rename_err = errno;
    ::unlink(tmp_.c_str());
    throw std::system_error(rename_err, std::generic_category(), "cannot rename '" + tmp_ + "' to '" + path_.string() + "'");
  }
  // The rename is durable only once the directory entry is.
  const int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string write_file_atomically(const std::filesystem::path& path, std::string_view content) {
  try {
    AtomicFile f(path);
    f.write(content);
    f.commit();
    return {};
  } catch (const std::system_error& e) {
    return e.what();
  }
}

}  // namespace cbm
