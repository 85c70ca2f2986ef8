// Unit tests of the ring's layout, bookkeeping and error handling (one thread).
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "check.hpp"
#include "speakup/ring_buffer.hpp"

using speakup::RingBuffer;
using speakup::RingLayoutError;
using speakup::RingView;

namespace {

/// A zeroed, 64-byte aligned scratch region.
struct Region {
  explicit Region(std::size_t bytes) : bytes(bytes), storage(new std::uint64_t[bytes / 8 + 16]()) {
    auto address = reinterpret_cast<std::uintptr_t>(storage.get());
    data = reinterpret_cast<unsigned char*>((address + 63) / 64 * 64);
  }
  std::size_t bytes;
  std::unique_ptr<std::uint64_t[]> storage;
  unsigned char* data;
};

/// Planar (channels x frames) block with distinct values per channel and frame.
std::vector<std::vector<float>> ramp(std::uint32_t channels, std::uint64_t frames, float start) {
  std::vector<std::vector<float>> block(channels, std::vector<float>(frames));
  for (std::uint32_t c = 0; c < channels; ++c) {
    for (std::uint64_t i = 0; i < frames; ++i) {
      block[c][i] = start + static_cast<float>(i) + 1000.0f * static_cast<float>(c);
    }
  }
  return block;
}

std::uint64_t write(RingView& ring, const std::vector<std::vector<float>>& block, std::uint64_t frames) {
  std::vector<const float*> pointers;
  for (const auto& channel : block) pointers.push_back(channel.data());
  return ring.write(pointers.data(), frames);
}

std::uint64_t read(RingView& ring, std::vector<std::vector<float>>& block, std::uint64_t frames) {
  std::vector<float*> pointers;
  for (auto& channel : block) pointers.push_back(channel.data());
  return ring.read(pointers.data(), frames);
}

}  // namespace

TEST_CASE(required_bytes_follow_the_documented_layout) {
  CHECK(speakup::ring_required_bytes(1, 16) == 192 + 64);
  CHECK(speakup::ring_required_bytes(2, 5) == 192 + 2 * 64);
  CHECK(speakup::ring_required_bytes(2, 17) == 192 + 2 * 128);
  CHECK(speakup::ring_required_bytes(3, 1000) == 192 + 3 * 4032);
  CHECK(speakup::ring_required_bytes(7, 12345) % speakup::kRingAlignmentBytes == 0);
}

TEST_CASE(a_new_ring_is_empty) {
  RingBuffer ring(2, 7);
  CHECK(ring.view().channels() == 2);
  CHECK(ring.view().capacity_frames() == 7);
  CHECK(ring.view().available() == 0);
  CHECK(ring.view().space() == 7);
}

TEST_CASE(frames_come_out_in_order_across_wrap_around) {
  RingBuffer owner(2, 5);
  RingView& ring = owner.view();
  float next = 0.0f;
  float expected = 0.0f;
  // Blocks of 3 through a ring of 5 wrap at a different slot every time.
  for (int round = 0; round < 20; ++round) {
    const auto block = ramp(2, 3, next);
    CHECK(write(ring, block, 3) == 3);
    next += 3.0f;
    auto out = ramp(2, 3, -1.0f);
    CHECK(read(ring, out, 3) == 3);
    for (std::uint32_t c = 0; c < 2; ++c) {
      for (int i = 0; i < 3; ++i) {
        CHECK(out[c][i] == expected + static_cast<float>(i) + 1000.0f * static_cast<float>(c));
      }
    }
    expected += 3.0f;
  }
}

TEST_CASE(writes_stop_at_space_and_reads_stop_at_available) {
  RingBuffer owner(1, 5);
  RingView& ring = owner.view();
  const auto block = ramp(1, 8, 0.0f);
  CHECK(write(ring, block, 8) == 5);
  CHECK(ring.available() == 5);
  CHECK(ring.space() == 0);
  CHECK(write(ring, block, 8) == 0);
  auto out = ramp(1, 8, -1.0f);
  CHECK(read(ring, out, 2) == 2);
  CHECK(out[0][0] == 0.0f && out[0][1] == 1.0f && out[0][2] == -1.0f + 2.0f);
  CHECK(ring.space() == 2);
  CHECK(read(ring, out, 8) == 3);
  CHECK(out[0][0] == 2.0f && out[0][2] == 4.0f);
  CHECK(read(ring, out, 8) == 0);
  CHECK(write(ring, block, 0) == 0);
}

TEST_CASE(a_ring_of_one_frame_works) {
  RingBuffer owner(3, 1);
  RingView& ring = owner.view();
  for (int i = 0; i < 5; ++i) {
    const auto block = ramp(3, 2, static_cast<float>(i));
    CHECK(write(ring, block, 2) == 1);
    auto out = ramp(3, 1, -1.0f);
    CHECK(read(ring, out, 1) == 1);
    CHECK(out[2][0] == static_cast<float>(i) + 2000.0f);
  }
}

TEST_CASE(samples_are_stored_planar_at_the_documented_offsets) {
  Region region(4096);
  RingView ring = RingView::create_in(region.data, region.bytes, 2, 10);
  const auto block = ramp(2, 4, 1.0f);
  CHECK(write(ring, block, 4) == 4);
  const auto* header = reinterpret_cast<const speakup::RingHeader*>(region.data);
  CHECK(header->descriptor.magic == speakup::kRingMagic);
  CHECK(std::memcmp(region.data, "SURB", 4) == 0);
  CHECK(header->descriptor.data_offset_bytes == 192);
  CHECK(header->descriptor.channel_stride_bytes == 64);
  CHECK(header->write_index.frames.load() == 4);
  const auto* samples = reinterpret_cast<const float*>(region.data + 192);
  CHECK(samples[0] == 1.0f && samples[3] == 4.0f);
  CHECK(samples[16] == 1001.0f && samples[19] == 1004.0f);
}

TEST_CASE(clear_discards_what_is_available) {
  RingBuffer owner(2, 8);
  RingView& ring = owner.view();
  const auto block = ramp(2, 6, 0.0f);
  CHECK(write(ring, block, 6) == 6);
  ring.clear();
  CHECK(ring.available() == 0);
  CHECK(ring.space() == 8);
  CHECK(write(ring, block, 6) == 6);
  auto out = ramp(2, 6, -1.0f);
  CHECK(read(ring, out, 6) == 6);
  CHECK(out[1][5] == 1005.0f);
}

TEST_CASE(an_attached_view_shares_the_ring) {
  Region region(4096);
  RingView producer = RingView::create_in(region.data, region.bytes, 2, 9);
  RingView consumer = RingView::attach_in(region.data, region.bytes);
  CHECK(consumer.channels() == 2 && consumer.capacity_frames() == 9);
  const auto block = ramp(2, 7, 5.0f);
  CHECK(write(producer, block, 7) == 7);
  auto out = ramp(2, 7, -1.0f);
  CHECK(read(consumer, out, 7) == 7);
  CHECK(out[0][6] == 11.0f && out[1][0] == 1005.0f);
  CHECK(producer.space() == 9);
}

TEST_CASE(rings_placed_back_to_back_are_independent) {
  const std::size_t first_bytes = speakup::ring_required_bytes(2, 13);
  Region region(first_bytes + speakup::ring_required_bytes(1, 7));
  RingView first = RingView::create_in(region.data, first_bytes, 2, 13);
  RingView second = RingView::create_in(region.data + first_bytes, region.bytes - first_bytes, 1, 7);
  const auto big = ramp(2, 13, 0.0f);
  const auto small = ramp(1, 7, 500.0f);
  CHECK(write(first, big, 13) == 13);
  CHECK(write(second, small, 7) == 7);
  auto out_big = ramp(2, 13, -1.0f);
  auto out_small = ramp(1, 7, -1.0f);
  CHECK(read(first, out_big, 13) == 13);
  CHECK(read(second, out_small, 7) == 7);
  CHECK(out_big == big);
  CHECK(out_small == small);
}

TEST_CASE(bad_shapes_and_regions_are_rejected) {
  Region region(1024);
  CHECK_THROWS(RingBuffer(0, 5), RingLayoutError);
  CHECK_THROWS(RingBuffer(2, 0), RingLayoutError);
  CHECK_THROWS(speakup::ring_required_bytes(1ull << 32, 5), RingLayoutError);
  CHECK_THROWS(speakup::ring_required_bytes(2, std::numeric_limits<std::uint64_t>::max()),
               RingLayoutError);
  CHECK_THROWS(RingView::create_in(region.data, region.bytes, 2, 1000), RingLayoutError);
  CHECK_THROWS(RingView::create_in(region.data + 8, region.bytes - 8, 1, 4), RingLayoutError);
  CHECK_THROWS(RingView::create_in(nullptr, region.bytes, 1, 4), RingLayoutError);
}

TEST_CASE(attach_rejects_bad_magic_version_and_size) {
  Region region(1024);
  CHECK_THROWS(RingView::attach_in(region.data, region.bytes), RingLayoutError);  // zeros
  RingView::create_in(region.data, region.bytes, 2, 20);
  CHECK_THROWS(RingView::attach_in(region.data, 100), RingLayoutError);
  CHECK_THROWS(RingView::attach_in(region.data, 300), RingLayoutError);
  auto* header = reinterpret_cast<speakup::RingHeader*>(region.data);
  header->descriptor.version = speakup::kRingProtocolVersion + 1;
  CHECK_THROWS(RingView::attach_in(region.data, region.bytes), RingLayoutError);
  header->descriptor.version = speakup::kRingProtocolVersion;
  header->descriptor.magic ^= 1u;
  CHECK_THROWS(RingView::attach_in(region.data, region.bytes), RingLayoutError);
  header->descriptor.magic ^= 1u;
  header->descriptor.total_bytes += 64;
  CHECK_THROWS(RingView::attach_in(region.data, region.bytes), RingLayoutError);
  header->descriptor.total_bytes -= 64;
  header->write_index.frames.store(21);
  CHECK_THROWS(RingView::attach_in(region.data, region.bytes), RingLayoutError);
  header->write_index.frames.store(20);
  CHECK(RingView::attach_in(region.data, region.bytes).available() == 20);
}

int main() { return check::run_all(); }
