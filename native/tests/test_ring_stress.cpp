// Producer and consumer threads push millions of frames through small rings
// in random block sizes; every sample is checked exactly.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "check.hpp"
#include "speakup/ring_buffer.hpp"

namespace {

/// The sample of (frame, channel): a hash, exact in float32 (24 bits).
float sample_at(std::uint64_t frame, std::uint32_t channel) {
  std::uint64_t x = frame * 0x9E3779B97F4A7C15ull + channel * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 32;
  return static_cast<float>(x & 0xFFFFFFu);
}

/// Streams total_frames through a ring; returns the number of wrong samples.
std::uint64_t stream(std::uint32_t channels, std::uint64_t capacity_frames,
                     std::uint64_t total_frames, std::uint64_t max_block, std::uint32_t seed) {
  speakup::RingBuffer owner(channels, capacity_frames);
  speakup::RingView ring = owner.view();
  std::atomic<bool> over_capacity{false};

  std::thread producer([&] {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<std::uint64_t> block_frames(1, max_block);
    std::vector<std::vector<float>> block(channels, std::vector<float>(max_block));
    std::vector<const float*> pointers(channels);
    std::uint64_t frame = 0;
    while (frame < total_frames) {
      const std::uint64_t wanted = std::min(block_frames(rng), total_frames - frame);
      for (std::uint32_t c = 0; c < channels; ++c) {
        for (std::uint64_t i = 0; i < wanted; ++i) block[c][i] = sample_at(frame + i, c);
      }
      std::uint64_t done = 0;
      while (done < wanted) {
        for (std::uint32_t c = 0; c < channels; ++c) pointers[c] = block[c].data() + done;
        const std::uint64_t n = ring.write(pointers.data(), wanted - done);
        if (n == 0) std::this_thread::yield();
        done += n;
      }
      frame += wanted;
    }
  });

  std::uint64_t wrong = 0;
  {
    std::mt19937_64 rng(seed + 1);
    std::uniform_int_distribution<std::uint64_t> block_frames(1, max_block);
    std::vector<std::vector<float>> block(channels, std::vector<float>(max_block));
    std::vector<float*> pointers(channels);
    std::uint64_t frame = 0;
    while (frame < total_frames) {
      if (ring.available() > capacity_frames) over_capacity = true;
      for (std::uint32_t c = 0; c < channels; ++c) pointers[c] = block[c].data();
      const std::uint64_t n = ring.read(pointers.data(), block_frames(rng));
      if (n == 0) {
        std::this_thread::yield();
        continue;
      }
      for (std::uint32_t c = 0; c < channels; ++c) {
        for (std::uint64_t i = 0; i < n; ++i) wrong += block[c][i] != sample_at(frame + i, c);
      }
      frame += n;
    }
  }
  producer.join();
  CHECK(!over_capacity);
  CHECK(ring.available() == 0);
  return wrong;
}

}  // namespace

TEST_CASE(stereo_stream_through_a_prime_capacity_ring_is_exact) {
  CHECK(stream(2, 1021, 8'000'000, 1500, 1) == 0);
}

TEST_CASE(mono_stream_with_tiny_blocks_is_exact) {
  CHECK(stream(1, 64, 1'000'000, 7, 2) == 0);
}

TEST_CASE(six_channel_stream_through_a_large_ring_is_exact) {
  CHECK(stream(6, 48'000, 4'000'000, 4096, 3) == 0);
}

int main() { return check::run_all(); }
