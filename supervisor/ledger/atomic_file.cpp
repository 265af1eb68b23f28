#include "atomic_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "output_file.hpp"

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

AtomicFile::AtomicFile(std::filesystem::path path, mode_t mode) : path_(std::move(path)), tmp_(temp_template(path_)) {
  const int fd = ::mkostemp(tmp_.data(), O_CLOEXEC | O_NOFOLLOW);  // O_CREAT | O_EXCL, mode 0600
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create a temporary file in '" + dir_of(path_).string() + "'");
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp_.c_str());
    throw std::system_error(err, std::generic_category(), "cannot set the mode of '" + tmp_ + "'");
  }
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
  // Checked again at the last moment: what was a regular file when the run started may not be now.
  if (auto problem = output_target_problem("output", path_)) {
    ::unlink(tmp_.c_str());
    throw std::runtime_error("not replacing '" + path_.string() + "': " + problem->what);
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

std::string write_file_atomically(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  try {
    AtomicFile f(path, mode);
    f.write(content);
    f.commit();
    return {};
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace cbm
