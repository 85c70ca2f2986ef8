// Shared-memory segments: mode, errors, and two rings used by two processes.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "check.hpp"
#include "speakup/ring_buffer.hpp"
#include "speakup/shared_memory.hpp"

using speakup::RingView;
using speakup::SharedMemory;

namespace {

std::string unique_name(const char* tag) {
  return "speakup-test-" + std::string(tag) + "-" + std::to_string(::getpid());
}

int error_code_of(void (*action)(const std::string&), const std::string& name) {
  try {
    action(name);
  } catch (const std::system_error& error) {
    return error.code().value();
  }
  return 0;
}

constexpr std::uint64_t kFrames = 2'000'000;
constexpr std::uint64_t kBlock = 480;

/// Child process: reads the input ring, writes each sample negated to the output ring.
int echo_negated(const std::string& name, std::size_t output_offset) {
  SharedMemory shm = SharedMemory::attach(name);
  RingView input = RingView::attach_in(shm.data(), shm.size_bytes());
  RingView output = RingView::attach_in(shm.data() + output_offset, shm.size_bytes() - output_offset);
  std::vector<float> left(kBlock), right(kBlock);
  std::uint64_t moved = 0;
  while (moved < kFrames) {
    float* in[] = {left.data(), right.data()};
    const std::uint64_t n = input.read(in, std::min(kBlock, output.space()));
    if (n == 0) {
      std::this_thread::yield();
      continue;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      left[i] = -left[i];
      right[i] = -right[i];
    }
    const float* out[] = {left.data(), right.data()};
    if (output.write(out, n) != n) return 2;
    moved += n;
  }
  return 0;
}

}  // namespace

TEST_CASE(a_created_segment_is_private_to_the_user) {
  const std::string name = unique_name("mode");
  const mode_t old_mask = ::umask(0);  // even a permissive umask gives 0600
  SharedMemory shm = SharedMemory::create(name, 1000);
  ::umask(old_mask);
  struct stat info {};
  CHECK(::stat(("/dev/shm/" + name).c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0600);
  CHECK(shm.size_bytes() == 1000);
  CHECK(shm.posix_name() == "/" + name);
  shm.unlink();
  CHECK(::stat(("/dev/shm/" + name).c_str(), &info) != 0);
}

TEST_CASE(segment_errors_carry_errno) {
  const std::string name = unique_name("errors");
  SharedMemory shm = SharedMemory::create("/" + name, 64);
  CHECK(error_code_of([](const std::string& n) { SharedMemory::create(n, 64); }, name) == EEXIST);
  shm.unlink();
  CHECK(error_code_of([](const std::string& n) { SharedMemory::attach(n); }, name) == ENOENT);
  CHECK(error_code_of([](const std::string& n) { SharedMemory::unlink(n); }, name) == ENOENT);
  CHECK_THROWS(SharedMemory::create("", 64), std::invalid_argument);
  CHECK_THROWS(SharedMemory::create("a/b", 64), std::invalid_argument);
  CHECK_THROWS(SharedMemory::create(name, 0), std::invalid_argument);
}

TEST_CASE(an_attached_mapping_sees_the_creators_bytes) {
  const std::string name = unique_name("bytes");
  SharedMemory created = SharedMemory::create(name, 4096);
  SharedMemory attached = SharedMemory::attach(name);
  CHECK(attached.size_bytes() == 4096);
  CHECK(attached.data()[4095] == 0);
  created.data()[4095] = 42;
  CHECK(attached.data()[4095] == 42);
  created.unlink();
}

TEST_CASE(two_processes_stream_through_two_rings_in_one_segment) {
  const std::string name = unique_name("echo");
  const std::size_t input_bytes = speakup::ring_required_bytes(2, 1000);
  const std::size_t size = input_bytes + speakup::ring_required_bytes(2, 1500) + 4096;
  SharedMemory shm = SharedMemory::create(name, size);
  RingView input = RingView::create_in(shm.data(), shm.size_bytes(), 2, 1000);
  RingView output =
      RingView::create_in(shm.data() + input_bytes, shm.size_bytes() - input_bytes, 2, 1500);

  const pid_t child = ::fork();
  if (child == 0) {
    ::_exit(echo_negated(name, input_bytes));
  }
  CHECK(child > 0);

  std::vector<float> left(700), right(700);
  std::uint64_t sent = 0, received = 0, wrong = 0;
  while (received < kFrames) {
    if (sent < kFrames) {
      const std::uint64_t n = std::min<std::uint64_t>(700, kFrames - sent);
      for (std::uint64_t i = 0; i < n; ++i) {
        left[i] = static_cast<float>((sent + i) % 16'000'000);
        right[i] = 0.5f * left[i];
      }
      const float* in[] = {left.data(), right.data()};
      sent += input.write(in, n);  // frames that did not fit are regenerated next time
    }
    std::vector<float> out_left(333), out_right(333);
    float* out[] = {out_left.data(), out_right.data()};
    const std::uint64_t n = output.read(out, 333);
    for (std::uint64_t i = 0; i < n; ++i) {
      const float expected = static_cast<float>((received + i) % 16'000'000);
      wrong += out_left[i] != -expected;
      wrong += out_right[i] != -0.5f * expected;
    }
    received += n;
    if (n == 0) std::this_thread::yield();
  }
  int status = -1;
  CHECK(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(wrong == 0);
  shm.unlink();
}

int main() { return check::run_all(); }
