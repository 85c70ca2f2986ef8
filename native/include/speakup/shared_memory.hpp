// A POSIX shared-memory segment mapped read-write into this process.
//
// One segment per plugin instance holds the bridge's header, parameter block
// and rings at offsets the bridge protocol chooses; rings go in with
// RingView::create_in(segment.data() + offset, segment.size_bytes() - offset, ...)
// at offsets that are multiples of kRingAlignmentBytes (the mapping itself is
// page aligned). Segments are private to the user: created with mode 0600 and
// O_EXCL (never reusing a stale segment of the same name).
//
// Names: "name" or "/name", at most 255 bytes, no other '/'; the POSIX name
// is always "/name". A segment outlives every mapping until unlink() is called.
//
// attach() trusts nothing it did not create: the segment must belong to this
// process's effective user and grant no group/other access (checked with
// fstat on the open descriptor, so a rename or symlink race cannot swap it).
// Every mapping is registered with the SIGBUS guard (sigbus_guard.hpp): if a
// peer truncates the segment, the mapping turns into zero pages and broken()
// becomes true instead of the process dying.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "speakup/sigbus_guard.hpp"

namespace speakup {

class SharedMemory {
 public:
  /// Creates a new segment of size_bytes (zero-filled, mode 0600) and maps it.
  /// Throws std::system_error (EEXIST if the name is taken), std::invalid_argument.
  static SharedMemory create(const std::string& name, std::size_t size_bytes) {
    const std::string posix_name = to_posix_name(name);
    if (size_bytes == 0) {
      throw std::invalid_argument("size_bytes must be >= 1");
    }
    const int fd = ::shm_open(posix_name.c_str(), O_CREAT | O_EXCL | O_RDWR, S_IRUSR | S_IWUSR);
    if (fd < 0) {
      const int code = errno;
      throw error(code, "cannot create shared memory '" + posix_name + "'");
    }
    // The umask may only have removed bits; make the mode exactly 0600.
    if (::fchmod(fd, S_IRUSR | S_IWUSR) != 0 ||
        ::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
      const int code = errno;
      ::close(fd);
      ::shm_unlink(posix_name.c_str());
      throw error(code, "cannot size shared memory '" + posix_name + "'");
    }
    struct stat info {};
    void* data = ::fstat(fd, &info) == 0
                     ? ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                     : MAP_FAILED;
    const int code = errno;
    ::close(fd);
    if (data == MAP_FAILED) {
      ::shm_unlink(posix_name.c_str());
      throw error(code, "cannot map shared memory '" + posix_name + "'");
    }
    return SharedMemory(posix_name, data, size_bytes, info.st_ino);
  }

  /// Maps an existing segment (its whole size). Throws std::system_error
  /// (ENOENT if there is no such segment), std::invalid_argument.
  static SharedMemory attach(const std::string& name) {
    const std::string posix_name = to_posix_name(name);
    const int fd = ::shm_open(posix_name.c_str(), O_RDWR, 0);
    if (fd < 0) {
      const int code = errno;
      throw error(code, "cannot attach shared memory '" + posix_name + "'");
    }
    struct stat info {};
    if (::fstat(fd, &info) != 0) {
      const int code = errno;
      ::close(fd);
      throw error(code, "cannot stat shared memory '" + posix_name + "'");
    }
    if (info.st_uid != ::geteuid()) {
      ::close(fd);
      throw std::invalid_argument("shared memory '" + posix_name + "' belongs to uid " +
                                  std::to_string(info.st_uid) + ", not to this user (uid " +
                                  std::to_string(::geteuid()) + ")");
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      ::close(fd);
      throw std::invalid_argument("shared memory '" + posix_name + "' has mode " +
                                  octal(info.st_mode & 0777) +
                                  ", which lets other users in (expected 0600)");
    }
    const auto size_bytes = static_cast<std::size_t>(info.st_size);
    if (size_bytes == 0) {
      ::close(fd);
      throw std::invalid_argument("shared memory '" + posix_name + "' is empty (size 0)");
    }
    void* data = ::mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int code = errno;
    ::close(fd);
    if (data == MAP_FAILED) {
      throw error(code, "cannot map shared memory '" + posix_name + "'");
    }
    return SharedMemory(posix_name, data, size_bytes, info.st_ino);
  }

  /// Removes the name `name` (mappings stay valid until unmapped).
  static void unlink(const std::string& name) {
    const std::string posix_name = to_posix_name(name);
    if (::shm_unlink(posix_name.c_str()) != 0) {
      const int code = errno;
      throw error(code, "cannot unlink shared memory '" + posix_name + "'");
    }
  }

  SharedMemory(SharedMemory&& other) noexcept
      : posix_name_(std::move(other.posix_name_)),
        data_(std::exchange(other.data_, nullptr)),
        size_bytes_(std::exchange(other.size_bytes_, 0)),
        inode_(other.inode_),
        guard_(std::exchange(other.guard_, nullptr)) {}

  SharedMemory& operator=(SharedMemory&& other) noexcept {
    if (this != &other) {
      unmap();
      posix_name_ = std::move(other.posix_name_);
      data_ = std::exchange(other.data_, nullptr);
      size_bytes_ = std::exchange(other.size_bytes_, 0);
      inode_ = other.inode_;
      guard_ = std::exchange(other.guard_, nullptr);
    }
    return *this;
  }

  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory() { unmap(); }

  /// The POSIX name, with its leading '/'.
  const std::string& posix_name() const noexcept { return posix_name_; }
  unsigned char* data() const noexcept { return static_cast<unsigned char*>(data_); }
  std::size_t size_bytes() const noexcept { return size_bytes_; }

  /// True once a peer truncated the segment under this mapping: the mapping now
  /// holds private zero pages and nothing written here reaches the peer any more.
  bool broken() const noexcept {
    return guard_ != nullptr && guard_->broken.load(std::memory_order_acquire);
  }

  /// Removes this segment's name (this mapping stays valid).
  void unlink() const { unlink(posix_name_); }

  /// True while the name still leads to the segment mapped here (not removed, not replaced).
  bool still_named() const noexcept {
    struct stat info {};
    return ::stat(("/dev/shm" + posix_name_).c_str(), &info) == 0 && info.st_ino == inode_;
  }

  /// "name" or "/name" -> "/name"; throws std::invalid_argument for a bad name.
  static std::string to_posix_name(const std::string& name) {
    const std::string bare = (!name.empty() && name[0] == '/') ? name.substr(1) : name;
    if (bare.empty()) {
      throw std::invalid_argument("shared memory name is empty");
    }
    if (bare.size() > 254) {
      throw std::invalid_argument("shared memory name '" + bare + "' is longer than 254 bytes");
    }
    if (bare.find('/') != std::string::npos || bare.find('\0') != std::string::npos) {
      throw std::invalid_argument("shared memory name '" + bare +
                                  "' must not contain '/' (other than a leading one) or NUL");
    }
    return "/" + bare;
  }

 private:
  SharedMemory(std::string posix_name, void* data, std::size_t size_bytes, ino_t inode)
      : posix_name_(std::move(posix_name)), data_(data), size_bytes_(size_bytes), inode_(inode) {
    try {
      guard_ = sigbus::guard(data_, size_bytes_);
    } catch (...) {
      ::munmap(data_, size_bytes_);
      throw;
    }
  }

  static std::string octal(unsigned mode) {
    std::string text = "0";
    for (int shift = 6; shift >= 0; shift -= 3) text += static_cast<char>('0' + ((mode >> shift) & 7u));
    return text;
  }

  static std::system_error error(int code, const std::string& what) {
    return std::system_error(code, std::generic_category(), what);
  }

  void unmap() noexcept {
    if (data_ != nullptr) {
      sigbus::release(std::exchange(guard_, nullptr));
      ::munmap(data_, size_bytes_);
      data_ = nullptr;
    }
  }

  std::string posix_name_;
  void* data_ = nullptr;
  std::size_t size_bytes_ = 0;
  ino_t inode_ = 0;  // of the object mapped (fstat at create/attach): tells a replaced name apart
  sigbus::GuardedMapping* guard_ = nullptr;
};

}  // namespace speakup
