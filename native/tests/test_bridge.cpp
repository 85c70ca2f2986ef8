// The bridge segment: layout, validation on attach, and a peer that attacks it.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "speakup/bridge.hpp"

using speakup::RingView;
using speakup::SharedMemory;
using speakup::bridge::BridgeError;
using speakup::bridge::Doorbell;
using speakup::bridge::Geometry;
using speakup::bridge::Segment;

namespace {

Geometry stereo() { return Geometry{2, 48000, 512, 17, 1024, 4096}; }

std::string unique_name(const char* tag) {
  return speakup::bridge::segment_prefix() + "test-" + tag + "-" + std::to_string(::getpid());
}

/// Opens the segment as a hostile peer would: a plain file descriptor.
int open_raw(const std::string& name) { return ::shm_open(("/" + name).c_str(), O_RDWR, 0); }

void poke(const std::string& name, std::size_t offset, const void* bytes, std::size_t count) {
  const int fd = open_raw(name);
  CHECK(fd >= 0);
  CHECK(::pwrite(fd, bytes, count, static_cast<off_t>(offset)) == static_cast<ssize_t>(count));
  ::close(fd);
}

template <class T>
void poke_value(const std::string& name, std::size_t offset, T value) {
  poke(name, offset, &value, sizeof value);
}

std::string refusal(const std::string& name) {
  try {
    Segment::attach(name);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

/// Echoes input to output for 3 s whatever the attacker writes; exits 3 on an impossible count.
void fuzzed_echo_server(const std::string& name) {
  Segment server = Segment::attach(name);
  server.set_server_pid(static_cast<std::uint32_t>(::getpid()));
  std::vector<float> left(512), right(512);
  float* out[] = {left.data(), right.data()};
  const float* in[] = {left.data(), right.data()};
  const auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < stop) {
    const std::uint64_t n =
        server.input().read(out, std::min<std::uint64_t>(512, server.output().space()));
    if (n > 512) ::_exit(3);
    server.output().write(in, n);
    if (server.input().corrupt()) server.input().clear();  // the consumer repairs its counters
    if (n == 0) server.wait_server(server.server_wake_count(), 1'000'000);
  }
}

}  // namespace

TEST_CASE(attach_sees_the_creators_geometry_parameters_and_rings) {
  const std::string name = unique_name("roundtrip");
  Segment client = Segment::create(name, stereo());
  Segment server = Segment::attach(name);
  CHECK(server.geometry().channels == 2);
  CHECK(server.geometry().sample_rate_hz == 48000);
  CHECK(server.geometry().block_frames == 512);
  CHECK(server.geometry().param_count == 17);
  CHECK(server.geometry().wet_latency_samples == 1024);
  CHECK(server.geometry().ring_capacity_frames == 4096);
  CHECK(server.creator_pid() == static_cast<std::uint32_t>(::getpid()));
  CHECK(server.memory().size_bytes() == server.layout().total_bytes);

  client.set_param(16, 0.25f);
  client.set_param(17, 9.0f);  // outside the block: ignored
  CHECK(server.param(16) == 0.25f);
  CHECK(server.param(17) == 0.0f);
  CHECK(server.params_generation() == 1);

  std::vector<float> left(300, 1.0f), right(300, -1.0f);
  const float* in[] = {left.data(), right.data()};
  CHECK(client.input().write(in, 300) == 300);
  CHECK(server.input().available() == 300);
  client.beat_client();
  server.beat_server();
  CHECK(client.server_heartbeat() == 1 && server.client_heartbeat() == 1);
  client.unlink();
}

TEST_CASE(foreign_and_malformed_segments_are_refused_with_a_reason) {
  const std::string name = unique_name("malformed");
  const auto fresh = [&] {
    SharedMemory::unlink(name);
    return Segment::create(name, stereo());
  };
  Segment segment = Segment::create(name, stereo());

  poke_value<std::uint32_t>(name, 0, 0x46464952u);  // "RIFF"
  CHECK(refusal(name).find("not a SpeakUp bridge segment") != std::string::npos);

  segment = fresh();
  poke_value<std::uint32_t>(name, 4, 99);
  CHECK(refusal(name).find("protocol 99") != std::string::npos);

  segment = fresh();
  poke_value<std::uint32_t>(name, 8, 9);  // channels
  CHECK(refusal(name).find("channels") != std::string::npos);

  segment = fresh();
  poke_value<std::uint64_t>(name, 48, segment.layout().input_offset + 64);  // input_offset
  CHECK(refusal(name).find("disagree") != std::string::npos);

  segment = fresh();
  poke_value<std::uint64_t>(name, 32, 1u << 20);  // ring_capacity_frames: needs more bytes than the segment
  CHECK(refusal(name).find("disagree") != std::string::npos);

  segment = fresh();
  poke_value<std::uint64_t>(name, segment.layout().output_offset + 16, 8192);  // ring capacity
  CHECK(refusal(name).find("ring at offset") != std::string::npos);

  segment = fresh();
  {
    const int fd = open_raw(name);
    CHECK(::ftruncate(fd, 200) == 0);
    ::close(fd);
  }
  CHECK(refusal(name).find("smaller than") != std::string::npos);

  segment = fresh();
  {
    const int fd = open_raw(name);
    CHECK(::fchmod(fd, 0644) == 0);
    ::close(fd);
  }
  CHECK(refusal(name).find("mode 0644") != std::string::npos);

  if (::geteuid() == 0) {  // only root can give a segment away to test the owner check
    segment = fresh();
    const int fd = open_raw(name);
    CHECK(::fchown(fd, 65534, 65534) == 0);
    ::close(fd);
    CHECK(refusal(name).find("belongs to uid 65534") != std::string::npos);
  }
  SharedMemory::unlink(name);
}

TEST_CASE(out_of_range_geometry_is_refused_at_create) {
  Geometry geometry = stereo();
  geometry.ring_capacity_frames = 100;  // smaller than a block
  CHECK_THROWS(Segment::create(unique_name("bad"), geometry), BridgeError);
  geometry = stereo();
  geometry.sample_rate_hz = 1000;
  CHECK_THROWS(Segment::create(unique_name("bad"), geometry), BridgeError);
}

TEST_CASE(a_rewritten_descriptor_after_attach_changes_nothing) {
  const std::string name = unique_name("rewrite");
  Segment client = Segment::create(name, stereo());
  Segment server = Segment::attach(name);
  // The peer claims a huge ring and another data offset in both places geometry lives.
  poke_value<std::uint64_t>(name, 32, 1u << 30);
  poke_value<std::uint32_t>(name, 8, 8);
  for (std::uint64_t ring : {server.layout().input_offset, server.layout().output_offset}) {
    poke_value<std::uint32_t>(name, ring + 8, 200);             // channels
    poke_value<std::uint64_t>(name, ring + 16, 1ull << 40);     // capacity_frames
    poke_value<std::uint64_t>(name, ring + 24, 1ull << 40);     // data_offset_bytes
    poke_value<std::uint64_t>(name, ring + 32, 1ull << 40);     // channel_stride_bytes
  }
  CHECK(server.input().channels() == 2);
  CHECK(server.input().capacity_frames() == 4096);
  std::vector<float> left(512, 0.5f), right(512, 0.25f);
  const float* in[] = {left.data(), right.data()};
  CHECK(client.input().write(in, 512) == 512);
  std::vector<float> out_left(512), out_right(512);
  float* out[] = {out_left.data(), out_right.data()};
  CHECK(server.input().read(out, 512) == 512);
  CHECK(out_left[511] == 0.5f && out_right[0] == 0.25f);
  client.unlink();
}

TEST_CASE(rewritten_ring_indices_never_move_more_than_the_ring_holds) {
  const std::string name = unique_name("indices");
  Segment client = Segment::create(name, stereo());
  Segment server = Segment::attach(name);
  const std::size_t write_index = server.layout().input_offset + 64;
  const std::size_t read_index = server.layout().input_offset + 128;
  // A destination larger than the ring, with a sentinel tail: any over-read would show.
  std::vector<float> left(10000, 7.0f), right(10000, 7.0f);
  float* out[] = {left.data(), right.data()};
  const float* in[] = {left.data(), right.data()};
  for (std::uint64_t written : {std::uint64_t{1} << 20, ~std::uint64_t{0}, std::uint64_t{4097}}) {
    poke_value<std::uint64_t>(name, write_index, written);
    poke_value<std::uint64_t>(name, read_index, 0);
    CHECK(server.input().corrupt());
    CHECK(server.input().available() == 0);
    CHECK(server.input().read(out, 10000) == 0);
    CHECK(client.input().space() == 0);
    CHECK(client.input().write(in, 10000) == 0);
  }
  poke_value<std::uint64_t>(name, write_index, 4096 + 123);
  poke_value<std::uint64_t>(name, read_index, 123);  // full ring, wrapped: legal
  CHECK(server.input().read(out, 10000) == 4096);
  CHECK(left[4096] == 7.0f && right[9999] == 7.0f);
  client.unlink();
}

TEST_CASE(a_truncated_segment_reads_as_zeros_and_reports_broken) {
  const std::string name = unique_name("truncate");
  Segment client = Segment::create(name, stereo());
  Segment server = Segment::attach(name);
  std::vector<float> left(512, 1.0f), right(512, 1.0f);
  const float* in[] = {left.data(), right.data()};
  CHECK(client.input().write(in, 512) == 512);
  const int fd = open_raw(name);
  CHECK(::ftruncate(fd, 0) == 0);
  ::close(fd);
  float* out[] = {left.data(), right.data()};
  CHECK(server.input().read(out, 512) == 0);  // would be SIGBUS without the guard
  CHECK(server.broken());
  CHECK(client.input().write(in, 512) == 512);  // private zero pages now: harmless
  CHECK(client.broken());
  SharedMemory::unlink(name);
}

TEST_CASE(a_futex_word_wakes_another_process) {
  const std::string name = unique_name("futex");
  Segment client = Segment::create(name, stereo());
  const std::uint32_t seen = client.server_wake_count();
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    Segment server = Segment::attach(name);
    const bool woken = server.wait_server(seen, 5'000'000'000ull);
    ::_exit(woken ? 0 : 1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  client.wake_server();
  int status = -1;
  CHECK(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const auto start = std::chrono::steady_clock::now();
  CHECK(!client.wait_client(client.client_wake_count(), 20'000'000ull));  // times out
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(15));
  client.unlink();
}

TEST_CASE(both_sides_survive_a_peer_rewriting_header_bytes_while_streaming) {
  const std::string name = unique_name("fuzz");
  Segment client = Segment::create(name, stereo());
  const auto layout = client.layout();
  std::fflush(nullptr);  // children must not repeat buffered output
  const pid_t server_pid = ::fork();
  if (server_pid == 0) {  // the server: echoes input to output for 3 s
    try {
      fuzzed_echo_server(name);
    } catch (...) {
      ::_exit(4);
    }
    ::_exit(0);
  }
  for (int i = 0; i < 5000 && client.server_pid() == 0; ++i) {  // attached before the attack
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(client.server_pid() != 0);
  const pid_t attacker_pid = ::fork();
  if (attacker_pid == 0) {  // rewrites random bytes of every header region
    const int fd = open_raw(name);
    std::mt19937_64 random(1234);
    const std::uint64_t regions[][2] = {{0, 384},
                                        {layout.input_offset, layout.input_offset + 192},
                                        {layout.output_offset, layout.output_offset + 192}};
    const auto stop = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
    while (std::chrono::steady_clock::now() < stop) {
      const auto& region = regions[random() % 3];
      const std::uint64_t offset = region[0] + random() % (region[1] - region[0]);
      const auto byte = static_cast<unsigned char>(random());
      if (::pwrite(fd, &byte, 1, static_cast<off_t>(offset)) != 1) ::_exit(2);
    }
    ::_exit(0);
  }
  std::vector<float> left(10000, 0.5f), right(10000, 0.5f);
  const float* in[] = {left.data(), right.data()};
  float* out[] = {left.data(), right.data()};
  std::uint64_t too_many = 0, received = 0;
  const auto stop = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < stop) {
    too_many += client.input().write(in, 512) > 512;
    client.wake_server();
    const std::uint64_t n = client.output().read(out, 10000);
    too_many += n > 4096;
    received += n;
    if (client.output().corrupt()) client.output().clear();  // consumer repairs its counters
    std::this_thread::yield();
  }
  CHECK(too_many == 0);
  CHECK(received > 0);  // audio flowed through the server while it was attacked
  for (pid_t pid : {server_pid, attacker_pid}) {
    int status = -1;
    CHECK(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  client.unlink();
}

std::string doorbell_refusal(const std::string& name) {
  try {
    Doorbell::attach(name);
  } catch (const std::invalid_argument& error) {
    return error.what();
  }
  return "";
}

TEST_CASE(a_doorbell_rung_by_one_process_wakes_the_server_in_another) {
  const std::string name = unique_name("doorbell");
  Doorbell server = Doorbell::create(name);
  CHECK(server.server_pid() == static_cast<std::uint32_t>(::getpid()));
  const std::uint32_t seen = server.count();
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {  // an instance: attaches, checks whose doorbell it is, rings once
    Doorbell instance = Doorbell::attach(name);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    instance.ring();
    ::_exit(instance.server_pid() == static_cast<std::uint32_t>(::getppid()) ? 0 : 1);
  }
  CHECK(server.wait(seen, 5'000'000'000ull));
  CHECK(server.count() == seen + 1);
  int status = -1;
  CHECK(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const auto start = std::chrono::steady_clock::now();
  CHECK(!server.wait(server.count(), 20'000'000ull));  // nobody rings: times out
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(15));
  server.unlink();
}

TEST_CASE(foreign_and_malformed_doorbells_are_refused_with_a_reason) {
  const std::string name = unique_name("bad-doorbell");
  const auto fresh = [&] {
    SharedMemory::unlink(name);
    return Doorbell::create(name);
  };
  Doorbell doorbell = Doorbell::create(name);

  poke_value<std::uint32_t>(name, 0, 0x47425553u);  // an instance segment's magic
  CHECK(doorbell_refusal(name).find("not a SpeakUp doorbell") != std::string::npos);

  doorbell = fresh();
  poke_value<std::uint32_t>(name, 4, 7);
  CHECK(doorbell_refusal(name).find("doorbell version 7") != std::string::npos);

  doorbell = fresh();
  poke_value<std::uint32_t>(name, 8, 0);
  CHECK(doorbell_refusal(name).find("pid 0") != std::string::npos);

  doorbell = fresh();
  poke_value<std::uint32_t>(name, 12, 4096);
  CHECK(doorbell_refusal(name).find("says it is 4096 bytes") != std::string::npos);

  for (const off_t size : {off_t{64}, off_t{4096}}) {
    doorbell = fresh();
    const int fd = open_raw(name);
    CHECK(::ftruncate(fd, size) == 0);
    ::close(fd);
    CHECK(doorbell_refusal(name).find("is " + std::to_string(size) + " bytes, not 128") != std::string::npos);
  }

  doorbell = fresh();
  {
    const int fd = open_raw(name);
    CHECK(::fchmod(fd, 0660) == 0);
    ::close(fd);
  }
  CHECK(doorbell_refusal(name).find("mode 0660") != std::string::npos);

  if (::geteuid() == 0) {  // only root can give a doorbell away to test the owner check
    doorbell = fresh();
    const int fd = open_raw(name);
    CHECK(::fchown(fd, 65534, 65534) == 0);
    ::close(fd);
    CHECK(doorbell_refusal(name).find("belongs to uid 65534") != std::string::npos);
  }
  doorbell = fresh();
  CHECK(doorbell_refusal(name).empty());  // the same name, well formed again: accepted
  SharedMemory::unlink(name);
}

TEST_CASE(a_doorbell_knows_when_its_name_was_removed_or_replaced) {
  const std::string name = unique_name("renamed-doorbell");
  Doorbell first = Doorbell::create(name);
  Doorbell attached = Doorbell::attach(name);
  CHECK(first.still_named() && attached.still_named());
  first.unlink();
  CHECK(!first.still_named() && !attached.still_named());
  Doorbell second = Doorbell::create(name);
  CHECK(second.still_named());
  CHECK(!first.still_named() && !attached.still_named());  // the name leads elsewhere now
  second.unlink();
}

TEST_CASE(a_truncated_doorbell_reports_broken_and_ringing_it_stays_harmless) {
  const std::string name = unique_name("cut-doorbell");
  Doorbell server = Doorbell::create(name);
  Doorbell instance = Doorbell::attach(name);
  const int fd = open_raw(name);
  CHECK(::ftruncate(fd, 0) == 0);
  ::close(fd);
  instance.ring();  // would be SIGBUS without the guard
  CHECK(instance.broken());
  CHECK(instance.server_pid() == server.server_pid());  // copied at attach, never re-read
  SharedMemory::unlink(name);
}

int main() { return check::run_all(); }
