// Lock-free single-producer / single-consumer ring of float32 audio frames.
//
// The ring lives in a region of memory it does not own: a heap allocation
// (speakup::RingBuffer) or an offset inside a POSIX shared-memory segment that
// several rings and a parameter block share (see shared_memory.hpp). The
// header is free of Python so the VST3 plugin bridge includes it directly.
//
// Region layout (all offsets from the start of the ring's region, which must be
// aligned to kRingAlignmentBytes = 64; every field is fixed-width, native
// byte order, and the sizes below are checked by static_assert):
//
//   offset  size  field
//   ------  ----  ---------------------------------------------------------
//        0     4  magic                 kRingMagic, bytes "SURB"
//        4     4  version               kRingProtocolVersion (1)
//        8     4  channels              >= 1
//       12     4  reserved              0
//       16     8  capacity_frames       >= 1, any value (not only powers of 2)
//       24     8  data_offset_bytes     192
//       32     8  channel_stride_bytes  capacity_frames * 4 rounded up to 64
//       40     8  total_bytes           required_bytes(channels, capacity_frames)
//       48    16  reserved              0
//       64     8  write_index           std::atomic<uint64_t>, own cache line
//      128     8  read_index            std::atomic<uint64_t>, own cache line
//      192     -  samples: planar float32; channel c's capacity_frames samples
//                 start at 192 + c * channel_stride_bytes
//
// total_bytes = 192 + channels * channel_stride_bytes, a multiple of 64, so
// rings placed back to back at offsets o, o + required_bytes(...) stay aligned.
//
// write_index and read_index count frames since creation (they never wrap in
// practice: 2^64 frames is millions of years at 192 kHz). Frame i lives in
// slot i % capacity_frames. Only the producer stores write_index (release,
// after copying the samples in); only the consumer stores read_index
// (release, after copying the samples out); each side loads the other's index
// with acquire. The atomics are lock-free and address-free, so the same
// protocol works between processes mapping the same segment.
//
// Trust: a view copies the geometry (channels, capacity, data offset, stride)
// into itself when it is created or attached and never reads those fields from
// the region again, so a peer that rewrites the descriptor later changes
// nothing. The two frame counters must be read from the region every time;
// a peer may write any value into them, so every call checks that the frames
// in flight (write_index - read_index, modulo 2^64) are at most the capacity
// and otherwise moves nothing (available() and space() report 0; corrupt()
// reports true). With local geometry and that check, no index a peer can
// write makes a view touch memory outside its ring.
//
// Threading contract: at any time one thread (or process) calls the producer
// methods (write, space) and one calls the consumer methods (read, available,
// clear). The creator hands a region to others (e.g. by passing a segment's
// name) only after create_in returns. Creating or attaching may throw and is
// not real-time safe; write, read, available, space and clear are wait-free,
// never allocate and never throw.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace speakup {

inline constexpr std::uint32_t kRingMagic = 0x42525553u;  // "SURB" in memory order
inline constexpr std::uint32_t kRingProtocolVersion = 1;
inline constexpr std::size_t kRingAlignmentBytes = 64;

/// Raised when a ring cannot be created in, or attached to, a region.
class RingLayoutError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Immutable description of a ring, written once at creation (bytes 0..63).
struct RingDescriptor {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t channels;
  std::uint32_t reserved0;
  std::uint64_t capacity_frames;
  std::uint64_t data_offset_bytes;
  std::uint64_t channel_stride_bytes;
  std::uint64_t total_bytes;
  std::uint8_t reserved1[16];
};
static_assert(std::is_trivially_copyable_v<RingDescriptor>);
static_assert(std::is_standard_layout_v<RingDescriptor>);
static_assert(sizeof(RingDescriptor) == 64);

/// A frame counter alone on its cache line.
struct alignas(kRingAlignmentBytes) RingCounter {
  std::atomic<std::uint64_t> frames;
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "the ring needs lock-free 64-bit atomics (also for shared memory)");
static_assert(sizeof(std::atomic<std::uint64_t>) == sizeof(std::uint64_t));
static_assert(sizeof(RingCounter) == kRingAlignmentBytes);

/// The 192-byte header at the start of every ring region.
struct alignas(kRingAlignmentBytes) RingHeader {
  RingDescriptor descriptor;
  RingCounter write_index;
  RingCounter read_index;
};
static_assert(std::is_standard_layout_v<RingHeader>);
static_assert(sizeof(RingHeader) == 192);
static_assert(offsetof(RingHeader, write_index) == 64);
static_assert(offsetof(RingHeader, read_index) == 128);

namespace detail {

inline std::uint64_t round_up(std::uint64_t value, std::uint64_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

inline void check_region(const void* region) {
  if (region == nullptr) {
    throw RingLayoutError("ring region is null");
  }
  if (reinterpret_cast<std::uintptr_t>(region) % kRingAlignmentBytes != 0) {
    throw RingLayoutError("ring region must be aligned to " + std::to_string(kRingAlignmentBytes) +
                          " bytes");
  }
}

}  // namespace detail

/// Bytes a ring of this shape occupies (a multiple of kRingAlignmentBytes).
/// Throws RingLayoutError for zero channels or frames, or a size that overflows.
inline std::size_t ring_required_bytes(std::uint64_t channels, std::uint64_t capacity_frames) {
  if (channels < 1 || channels > UINT32_MAX) {
    throw RingLayoutError("channels must be in [1, 2^32), got " + std::to_string(channels));
  }
  if (capacity_frames < 1) {
    throw RingLayoutError("capacity_frames must be >= 1, got " + std::to_string(capacity_frames));
  }
  constexpr std::uint64_t limit = std::uint64_t{1} << 62;  // far beyond any real segment
  if (capacity_frames > limit / sizeof(float) / channels) {
    throw RingLayoutError("ring of " + std::to_string(channels) + " channels x " +
                          std::to_string(capacity_frames) + " frames is too large");
  }
  const std::uint64_t stride = detail::round_up(capacity_frames * sizeof(float), kRingAlignmentBytes);
  return static_cast<std::size_t>(sizeof(RingHeader) + channels * stride);
}

/// A ring over memory it does not own. Cheap to copy; all copies share the ring.
class RingView {
 public:
  RingView() = default;

  /// Writes a fresh, empty ring into `region` (which must stay mapped while used).
  static RingView create_in(void* region, std::size_t region_bytes, std::uint64_t channels,
                            std::uint64_t capacity_frames) {
    detail::check_region(region);
    const std::size_t needed = ring_required_bytes(channels, capacity_frames);
    if (needed > region_bytes) {
      throw RingLayoutError("ring of " + std::to_string(channels) + " channels x " +
                            std::to_string(capacity_frames) + " frames needs " +
                            std::to_string(needed) + " bytes, region has " +
                            std::to_string(region_bytes));
    }
    auto* header = new (region) RingHeader{};
    RingDescriptor d{};
    d.version = kRingProtocolVersion;
    d.channels = static_cast<std::uint32_t>(channels);
    d.capacity_frames = capacity_frames;
    d.data_offset_bytes = sizeof(RingHeader);
    d.channel_stride_bytes = (needed - sizeof(RingHeader)) / channels;
    d.total_bytes = needed;
    std::memcpy(&header->descriptor, &d, sizeof d);
    header->write_index.frames.store(0, std::memory_order_relaxed);
    header->read_index.frames.store(0, std::memory_order_relaxed);
    // Last: a creator that dies half-way leaves no valid ring.
    std::atomic_thread_fence(std::memory_order_release);
    header->descriptor.magic = kRingMagic;
    return RingView(header, d);
  }

  /// Attaches to a ring another party created in `region`; validates its header.
  static RingView attach_in(void* region, std::size_t region_bytes) {
    detail::check_region(region);
    if (region_bytes < sizeof(RingHeader)) {
      throw RingLayoutError("region of " + std::to_string(region_bytes) +
                            " bytes is smaller than the " + std::to_string(sizeof(RingHeader)) +
                            "-byte ring header");
    }
    auto* header = static_cast<RingHeader*>(region);
    RingDescriptor d;  // one copy: a peer rewriting the header while we check cannot fool us
    std::memcpy(&d, &header->descriptor, sizeof d);
    if (d.magic != kRingMagic) {
      throw RingLayoutError("no ring at this offset: bad magic " + hex(d.magic) + " (expected " +
                            hex(kRingMagic) + ")");
    }
    if (d.version != kRingProtocolVersion) {
      throw RingLayoutError("ring protocol version " + std::to_string(d.version) +
                            " is not supported (this build speaks version " +
                            std::to_string(kRingProtocolVersion) + ")");
    }
    const std::size_t needed = ring_required_bytes(d.channels, d.capacity_frames);
    if (d.total_bytes != needed || d.data_offset_bytes != sizeof(RingHeader) ||
        d.channel_stride_bytes != (needed - sizeof(RingHeader)) / d.channels) {
      throw RingLayoutError("ring header sizes are inconsistent (corrupt header)");
    }
    if (needed > region_bytes) {
      throw RingLayoutError("ring of " + std::to_string(d.channels) + " channels x " +
                            std::to_string(d.capacity_frames) + " frames needs " +
                            std::to_string(needed) + " bytes, region has " +
                            std::to_string(region_bytes));
    }
    const std::uint64_t read = header->read_index.frames.load(std::memory_order_acquire);
    const std::uint64_t written = header->write_index.frames.load(std::memory_order_acquire);
    if (written - read > d.capacity_frames) {
      throw RingLayoutError("ring counters are inconsistent (corrupt header)");
    }
    return RingView(header, d);
  }

  bool valid() const noexcept { return header_ != nullptr; }
  std::uint32_t channels() const noexcept { return channels_; }
  std::uint64_t capacity_frames() const noexcept { return capacity_frames_; }
  std::size_t total_bytes() const noexcept {
    return ring_required_bytes(channels_, capacity_frames_);
  }

  /// Frames ready to read. Exact for the consumer; a snapshot for anyone else.
  std::uint64_t available() const noexcept {
    const std::uint64_t in_flight = frames_in_flight();
    return in_flight <= capacity_frames_ ? in_flight : 0;
  }

  /// Frames that fit. Exact for the producer; a snapshot for anyone else.
  std::uint64_t space() const noexcept {
    const std::uint64_t in_flight = frames_in_flight();
    return in_flight <= capacity_frames_ ? capacity_frames_ - in_flight : 0;
  }

  /// True while the counters claim more frames in flight than the ring holds:
  /// a peer wrote them (this side's own calls never do). Nothing moves meanwhile.
  bool corrupt() const noexcept { return frames_in_flight() > capacity_frames_; }

  /// Producer: copies min(frames, space()) frames; channel c's samples are
  /// read from channel_data(c)[0 .. frames). Returns the frames written.
  template <class ChannelData>
  std::uint64_t write_with(ChannelData&& channel_data, std::uint64_t frames) noexcept {
    const std::uint64_t capacity = capacity_frames_;
    const std::uint64_t written = header_->write_index.frames.load(std::memory_order_relaxed);
    const std::uint64_t read = header_->read_index.frames.load(std::memory_order_acquire);
    if (written - read > capacity) {
      return 0;  // corrupt counters
    }
    const std::uint64_t count = std::min(frames, capacity - (written - read));
    if (count == 0) {
      return 0;
    }
    const std::uint64_t slot = written % capacity;
    const std::uint64_t first = std::min(count, capacity - slot);
    for (std::uint32_t c = 0; c < channels_; ++c) {
      const float* source = channel_data(c);
      float* ring = samples(c);
      std::memcpy(ring + slot, source, first * sizeof(float));
      std::memcpy(ring, source + first, (count - first) * sizeof(float));
    }
    header_->write_index.frames.store(written + count, std::memory_order_release);
    return count;
  }

  /// Producer: planar input, one pointer per channel (e.g. a plugin's inputs).
  std::uint64_t write(const float* const* channel_data, std::uint64_t frames) noexcept {
    return write_with([channel_data](std::uint32_t c) { return channel_data[c]; }, frames);
  }

  /// Consumer: copies min(max_frames, available()) frames; channel c's samples
  /// go to channel_data(c)[0 .. n). Returns the frames read.
  template <class ChannelData>
  std::uint64_t read_with(ChannelData&& channel_data, std::uint64_t max_frames) noexcept {
    const std::uint64_t capacity = capacity_frames_;
    const std::uint64_t read = header_->read_index.frames.load(std::memory_order_relaxed);
    const std::uint64_t written = header_->write_index.frames.load(std::memory_order_acquire);
    if (written - read > capacity) {
      return 0;  // corrupt counters
    }
    const std::uint64_t count = std::min(max_frames, written - read);
    if (count == 0) {
      return 0;
    }
    const std::uint64_t slot = read % capacity;
    const std::uint64_t first = std::min(count, capacity - slot);
    for (std::uint32_t c = 0; c < channels_; ++c) {
      float* destination = channel_data(c);
      const float* ring = samples(c);
      std::memcpy(destination, ring + slot, first * sizeof(float));
      std::memcpy(destination + first, ring, (count - first) * sizeof(float));
    }
    header_->read_index.frames.store(read + count, std::memory_order_release);
    return count;
  }

  /// Consumer: planar output, one pointer per channel (e.g. a plugin's outputs).
  std::uint64_t read(float* const* channel_data, std::uint64_t max_frames) noexcept {
    return read_with([channel_data](std::uint32_t c) { return channel_data[c]; }, max_frames);
  }

  /// Consumer: discards every frame available now (also repairs corrupt counters).
  void clear() noexcept {
    const std::uint64_t written = header_->write_index.frames.load(std::memory_order_acquire);
    header_->read_index.frames.store(written, std::memory_order_release);
  }

 private:
  RingView(RingHeader* header, const RingDescriptor& checked)
      : header_(header),
        channels_(checked.channels),
        capacity_frames_(checked.capacity_frames),
        stride_bytes_(checked.channel_stride_bytes) {}

  std::uint64_t frames_in_flight() const noexcept {
    const std::uint64_t read = header_->read_index.frames.load(std::memory_order_acquire);
    const std::uint64_t written = header_->write_index.frames.load(std::memory_order_acquire);
    return written - read;
  }

  float* samples(std::uint32_t channel) const noexcept {
    auto* base = reinterpret_cast<unsigned char*>(header_) + sizeof(RingHeader);
    return reinterpret_cast<float*>(base + channel * stride_bytes_);
  }

  static std::string hex(std::uint32_t value) {
    static const char digits[] = "0123456789abcdef";
    std::string text = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) {
      text += digits[(value >> shift) & 0xfu];
    }
    return text;
  }

  RingHeader* header_ = nullptr;
  std::uint32_t channels_ = 0;
  std::uint64_t capacity_frames_ = 0;
  std::uint64_t stride_bytes_ = 0;
};

/// A ring that owns its (heap, 64-byte aligned) region: for use inside one process.
class RingBuffer {
 public:
  RingBuffer(std::uint64_t channels, std::uint64_t capacity_frames)
      : region_(allocate(ring_required_bytes(channels, capacity_frames))),
        view_(RingView::create_in(region_.get(), ring_required_bytes(channels, capacity_frames),
                                  channels, capacity_frames)) {}

  RingView& view() noexcept { return view_; }
  const RingView& view() const noexcept { return view_; }

 private:
  struct AlignedDelete {
    void operator()(void* pointer) const noexcept {
      ::operator delete(pointer, std::align_val_t{kRingAlignmentBytes});
    }
  };

  static std::unique_ptr<void, AlignedDelete> allocate(std::size_t bytes) {
    void* pointer = ::operator new(bytes, std::align_val_t{kRingAlignmentBytes});
    std::memset(pointer, 0, bytes);
    return std::unique_ptr<void, AlignedDelete>(pointer);
  }

  std::unique_ptr<void, AlignedDelete> region_;
  RingView view_;
};

}  // namespace speakup
