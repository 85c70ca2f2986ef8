// The plugin <-> model server bridge: one shared-memory segment per plugin instance.
//
// The plugin creates the segment (mode 0600, name scoped to its user and
// process, see segment_name) and is the producer of the input ring and the
// consumer of the output ring; the server attaches, consumes input, produces
// output. Nothing but this segment passes between them (no sockets).
//
// Segment layout (offsets from the start of the mapping; native byte order):
//
//   offset  size  field
//   ------  ----  ------------------------------------------------------------
//        0    72  BridgeDescriptor: magic "SUBG", version, channels,
//                 sample_rate_hz, block_frames, param_count, wet_latency_samples,
//                 creator_pid (u32 each); ring_capacity_frames, params_offset,
//                 input_offset, output_offset, total_bytes (u64 each)
//       72    56  zero
//      128    64  client line: client_heartbeat (u64), params_generation (u64)
//      192    64  server line: server_heartbeat (u64), server_pid (u32)
//      256    64  server_wake: futex word the client bumps after writing input
//      320    64  client_wake: futex word the server bumps after writing output
//      384     -  parameter block: param_count x float32 (atomic), padded to 64
//   input_offset  input ring (ring_buffer.hpp), client -> server
//  output_offset  output ring, server -> client
//    total_bytes  end
//
// Every offset is a pure function of (channels, param_count,
// ring_capacity_frames) -- see BridgeLayout::of -- so attach recomputes the
// layout and refuses a segment whose descriptor disagrees in any field.
//
// Trust: the descriptor is copied once at attach and never read again; the
// rings keep their own copy of their geometry (see ring_buffer.hpp); parameter
// indices are checked against the local param_count; the mapping is guarded
// against truncation (sigbus_guard.hpp: broken() turns true and the memory
// reads as zeros); SharedMemory::attach refuses segments of other users or
// with group/other permissions. A peer can therefore feed us wrong samples or
// stop talking, but cannot make us read or write outside the mapping.
//
// Wake-ups are futex words (Linux): the waiter loads the word, checks for
// work, then sleeps only while the word is unchanged, with a timeout; the
// notifier increments the word and wakes. No lock exists that a dead process
// could leave held.
//
// The server doorbell: a futex waits on one word, yet the server serves many
// segments. So the server also creates one small segment per user (Doorbell,
// named doorbell_name(), mode 0600, re-created by every server that takes the
// lock) whose word every instance rings after writing input; the server
// sleeps on it alone, with a timeout (heartbeats, scans, idle exit). Its pid
// in the doorbell lets an instance tell a live server's doorbell from a dead
// one's: it rings the doorbell only while that pid is the one its segment
// names as its server, and its own segment's server_wake word otherwise.
//
//   offset  size  field
//        0    16  DoorbellDescriptor: magic "SUDB", version, server_pid, total_bytes (u32 each)
//       16    48  zero
//       64    64  ring: the futex word instances bump after writing input
//      128     -  end
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "speakup/ring_buffer.hpp"
#include "speakup/shared_memory.hpp"

namespace speakup::bridge {

inline constexpr std::uint32_t kMagic = 0x47425553u;  // "SUBG" in memory order
inline constexpr std::uint32_t kProtocolVersion = 1;

inline constexpr std::uint32_t kMaxChannels = 8;
inline constexpr std::uint32_t kMinSampleRateHz = 8000;
inline constexpr std::uint32_t kMaxSampleRateHz = 384000;
inline constexpr std::uint32_t kMaxBlockFrames = 1u << 16;
inline constexpr std::uint32_t kMaxParams = 256;
inline constexpr std::uint64_t kMaxRingCapacityFrames = 1u << 22;
inline constexpr std::uint32_t kMaxWetLatencySamples = 1u << 22;

/// Raised when a segment is foreign, malformed or the requested geometry is out of range.
class BridgeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// Fixed description of a segment, written once by the creator (bytes 0..63).
struct BridgeDescriptor {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t channels;
  std::uint32_t sample_rate_hz;
  std::uint32_t block_frames;     // the most frames the client writes per host block
  std::uint32_t param_count;
  std::uint32_t wet_latency_samples;  // delay the server's output must have behind its input
  std::uint32_t creator_pid;
  std::uint64_t ring_capacity_frames;
  std::uint64_t params_offset;
  std::uint64_t input_offset;
  std::uint64_t output_offset;
  std::uint64_t total_bytes;
};
static_assert(std::is_trivially_copyable_v<BridgeDescriptor>);
static_assert(sizeof(BridgeDescriptor) == 72);

struct alignas(64) ClientLine {
  std::atomic<std::uint64_t> heartbeat;
  std::atomic<std::uint64_t> params_generation;
};
struct alignas(64) ServerLine {
  std::atomic<std::uint64_t> heartbeat;
  std::atomic<std::uint32_t> pid;
};
struct alignas(64) WakeWord {
  std::atomic<std::uint32_t> value;
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == 4, "futex words are 32-bit");
static_assert(std::atomic<float>::is_always_lock_free && sizeof(std::atomic<float>) == 4);

struct alignas(64) BridgeHeader {
  BridgeDescriptor descriptor;
  ClientLine client;
  ServerLine server;
  WakeWord server_wake;
  WakeWord client_wake;
};
static_assert(std::is_standard_layout_v<BridgeHeader>);
static_assert(offsetof(BridgeHeader, client) == 128);
static_assert(offsetof(BridgeHeader, server) == 192);
static_assert(offsetof(BridgeHeader, server_wake) == 256);
static_assert(offsetof(BridgeHeader, client_wake) == 320);
static_assert(sizeof(BridgeHeader) == 384);

/// What the creator chooses; everything else follows from it.
struct Geometry {
  std::uint32_t channels = 0;
  std::uint32_t sample_rate_hz = 0;
  std::uint32_t block_frames = 0;
  std::uint32_t param_count = 0;
  std::uint32_t wet_latency_samples = 0;
  std::uint64_t ring_capacity_frames = 0;

  /// Throws BridgeError naming the first field out of range.
  void validate() const {
    check("channels", channels, 1, kMaxChannels);
    check("sample_rate_hz", sample_rate_hz, kMinSampleRateHz, kMaxSampleRateHz);
    check("block_frames", block_frames, 1, kMaxBlockFrames);
    check("param_count", param_count, 0, kMaxParams);
    check("wet_latency_samples", wet_latency_samples, 0, kMaxWetLatencySamples);
    check("ring_capacity_frames", ring_capacity_frames, block_frames, kMaxRingCapacityFrames);
  }

 private:
  static void check(const char* name, std::uint64_t value, std::uint64_t low, std::uint64_t high) {
    if (value < low || value > high) {
      throw BridgeError(std::string(name) + " = " + std::to_string(value) + " is outside [" +
                        std::to_string(low) + ", " + std::to_string(high) + "]");
    }
  }
};

/// Offsets and total size for a geometry (all multiples of 64).
struct Layout {
  std::uint64_t params_offset;
  std::uint64_t input_offset;
  std::uint64_t output_offset;
  std::uint64_t ring_bytes;
  std::uint64_t total_bytes;

  static Layout of(const Geometry& geometry) {
    Layout layout{};
    layout.params_offset = sizeof(BridgeHeader);
    layout.input_offset = layout.params_offset + speakup::detail::round_up(geometry.param_count * 4ull, 64);
    layout.ring_bytes = ring_required_bytes(geometry.channels, geometry.ring_capacity_frames);
    layout.output_offset = layout.input_offset + layout.ring_bytes;
    layout.total_bytes = layout.output_offset + layout.ring_bytes;
    return layout;
  }
};

/// The user's runtime directory for the server's lock and log: $XDG_RUNTIME_DIR/speakup,
/// or /tmp/speakup-u<euid> without it (the server creates it with mode 0700).
inline std::string runtime_dir() {
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/speakup";
  return "/tmp/speakup-u" + std::to_string(::geteuid());
}

/// "speakup-u<euid>-<runtime dir hash>-": every segment of this user and runtime directory
/// starts with it. The server lists these; a server with another runtime directory (another
/// lock, e.g. a test's) never sees them.
inline std::string segment_prefix() {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (const char c : runtime_dir()) hash = (hash ^ static_cast<unsigned char>(c)) * 16777619u;
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (int shift = 28; shift >= 0; shift -= 4) hex += digits[(hash >> shift) & 0xfu];
  return "speakup-u" + std::to_string(::geteuid()) + "-" + hex + "-";
}

/// The segment name of instance `instance` of this process.
inline std::string segment_name(std::uint64_t instance) {
  return segment_prefix() + std::to_string(::getpid()) + "-" + std::to_string(instance);
}

/// The server doorbell's name: "<segment_prefix()>doorbell" (never an instance's "<pid>-<n>").
inline std::string doorbell_name() { return segment_prefix() + "doorbell"; }

namespace detail {

inline long futex(std::atomic<std::uint32_t>* word, int operation, std::uint32_t value,
                  const timespec* timeout) noexcept {
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), operation, value, timeout,
                   nullptr, 0);
}

inline std::string hex(std::uint32_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string text = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) text += digits[(value >> shift) & 0xfu];
  return text;
}

inline void notify(WakeWord& word) noexcept {
  word.value.fetch_add(1, std::memory_order_release);
  futex(&word.value, FUTEX_WAKE, INT_MAX, nullptr);
}

/// Sleeps while the word still equals `seen`, at most timeout_ns; true if it changed.
inline bool wait(WakeWord& word, std::uint32_t seen, std::uint64_t timeout_ns) noexcept {
  if (word.value.load(std::memory_order_acquire) != seen) return true;
  const timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000ull),
                         static_cast<long>(timeout_ns % 1'000'000'000ull)};
  futex(&word.value, FUTEX_WAIT, seen, &timeout);  // EAGAIN, EINTR, ETIMEDOUT all end the wait
  return word.value.load(std::memory_order_acquire) != seen;
}

}  // namespace detail

/// One instance's segment, seen from either side. Move-only.
class Segment {
 public:
  /// Client (plugin): creates the segment `name` for `geometry` and maps it.
  static Segment create(const std::string& name, const Geometry& geometry) {
    geometry.validate();
    const Layout layout = Layout::of(geometry);
    SharedMemory memory = SharedMemory::create(name, layout.total_bytes);
    auto* header = new (memory.data()) BridgeHeader{};
    RingView input = RingView::create_in(memory.data() + layout.input_offset, layout.ring_bytes,
                                         geometry.channels, geometry.ring_capacity_frames);
    RingView output = RingView::create_in(memory.data() + layout.output_offset, layout.ring_bytes,
                                          geometry.channels, geometry.ring_capacity_frames);
    BridgeDescriptor d{};
    d.version = kProtocolVersion;
    d.channels = geometry.channels;
    d.sample_rate_hz = geometry.sample_rate_hz;
    d.block_frames = geometry.block_frames;
    d.param_count = geometry.param_count;
    d.wet_latency_samples = geometry.wet_latency_samples;
    d.creator_pid = static_cast<std::uint32_t>(::getpid());
    d.ring_capacity_frames = geometry.ring_capacity_frames;
    d.params_offset = layout.params_offset;
    d.input_offset = layout.input_offset;
    d.output_offset = layout.output_offset;
    d.total_bytes = layout.total_bytes;
    std::memcpy(&header->descriptor, &d, sizeof d);
    std::atomic_thread_fence(std::memory_order_release);
    header->descriptor.magic = kMagic;  // last: a half-written segment is refused on attach
    return Segment(std::move(memory), geometry, layout, input, output, d.creator_pid);
  }

  /// Server: maps the segment `name` and validates every field; throws BridgeError
  /// (foreign or malformed segment), std::invalid_argument (wrong owner or mode),
  /// std::system_error (no such segment).
  static Segment attach(const std::string& name) {
    SharedMemory memory = SharedMemory::attach(name);
    const std::string what = "shared memory '" + memory.posix_name() + "'";
    if (memory.size_bytes() < sizeof(BridgeHeader)) {
      throw BridgeError(what + " is " + std::to_string(memory.size_bytes()) +
                        " bytes, smaller than the " + std::to_string(sizeof(BridgeHeader)) +
                        "-byte bridge header");
    }
    BridgeDescriptor d;
    std::memcpy(&d, memory.data(), sizeof d);  // the one read of the descriptor
    if (d.magic != kMagic) {
      throw BridgeError(what + " is not a SpeakUp bridge segment (magic " + detail::hex(d.magic) + ")");
    }
    if (d.version != kProtocolVersion) {
      throw BridgeError(what + " speaks bridge protocol " + std::to_string(d.version) +
                        "; this build speaks " + std::to_string(kProtocolVersion));
    }
    Geometry geometry;
    geometry.channels = d.channels;
    geometry.sample_rate_hz = d.sample_rate_hz;
    geometry.block_frames = d.block_frames;
    geometry.param_count = d.param_count;
    geometry.wet_latency_samples = d.wet_latency_samples;
    geometry.ring_capacity_frames = d.ring_capacity_frames;
    try {
      geometry.validate();
    } catch (const BridgeError& error) {
      throw BridgeError(what + ": " + error.what());
    }
    const Layout layout = Layout::of(geometry);
    if (d.params_offset != layout.params_offset || d.input_offset != layout.input_offset ||
        d.output_offset != layout.output_offset || d.total_bytes != layout.total_bytes) {
      throw BridgeError(what + ": offsets or total size disagree with its geometry");
    }
    if (memory.size_bytes() < layout.total_bytes) {
      throw BridgeError(what + " is " + std::to_string(memory.size_bytes()) +
                        " bytes, its header says " + std::to_string(layout.total_bytes));
    }
    RingView input = attach_ring(memory, layout.input_offset, layout.ring_bytes, geometry, what);
    RingView output = attach_ring(memory, layout.output_offset, layout.ring_bytes, geometry, what);
    return Segment(std::move(memory), geometry, layout, input, output, d.creator_pid);
  }

  Segment(Segment&&) noexcept = default;
  Segment& operator=(Segment&&) noexcept = default;

  /// The geometry as validated at create/attach (never re-read).
  const Geometry& geometry() const noexcept { return geometry_; }
  const Layout& layout() const noexcept { return layout_; }
  const SharedMemory& memory() const noexcept { return memory_; }
  std::uint32_t creator_pid() const noexcept { return creator_pid_; }

  RingView& input() noexcept { return input_; }    // client writes, server reads
  RingView& output() noexcept { return output_; }  // server writes, client reads

  /// True once the segment was truncated under us (see sigbus_guard.hpp); detach then.
  bool broken() const noexcept { return memory_.broken(); }

  /// Parameter i (plain value); 0 for an index outside the block.
  float param(std::uint32_t index) const noexcept {
    return index < geometry_.param_count ? params()[index].load(std::memory_order_relaxed) : 0.0f;
  }
  /// Client: sets parameter i (ignored outside the block) and bumps the generation.
  void set_param(std::uint32_t index, float value) noexcept {
    if (index >= geometry_.param_count) return;
    params()[index].store(value, std::memory_order_relaxed);
    header()->client.params_generation.fetch_add(1, std::memory_order_release);
  }
  std::uint64_t params_generation() const noexcept {
    return header()->client.params_generation.load(std::memory_order_acquire);
  }

  void beat_client() noexcept { header()->client.heartbeat.fetch_add(1, std::memory_order_release); }
  void beat_server() noexcept { header()->server.heartbeat.fetch_add(1, std::memory_order_release); }
  std::uint64_t client_heartbeat() const noexcept {
    return header()->client.heartbeat.load(std::memory_order_acquire);
  }
  std::uint64_t server_heartbeat() const noexcept {
    return header()->server.heartbeat.load(std::memory_order_acquire);
  }
  void set_server_pid(std::uint32_t pid) noexcept { header()->server.pid.store(pid, std::memory_order_release); }
  std::uint32_t server_pid() const noexcept { return header()->server.pid.load(std::memory_order_acquire); }

  /// Client after writing input / server after writing output.
  void wake_server() noexcept { detail::notify(header()->server_wake); }
  void wake_client() noexcept { detail::notify(header()->client_wake); }
  std::uint32_t server_wake_count() const noexcept {
    return header()->server_wake.value.load(std::memory_order_acquire);
  }
  std::uint32_t client_wake_count() const noexcept {
    return header()->client_wake.value.load(std::memory_order_acquire);
  }
  /// Sleep until the other side wakes us (word != seen) or timeout_ns pass; true if woken.
  bool wait_server(std::uint32_t seen, std::uint64_t timeout_ns) noexcept {
    return detail::wait(header()->server_wake, seen, timeout_ns);
  }
  bool wait_client(std::uint32_t seen, std::uint64_t timeout_ns) noexcept {
    return detail::wait(header()->client_wake, seen, timeout_ns);
  }

  /// Removes the segment's name (the creator does this when its instance goes away).
  void unlink() const { memory_.unlink(); }

 private:
  Segment(SharedMemory memory, const Geometry& geometry, const Layout& layout, RingView input,
          RingView output, std::uint32_t creator_pid)
      : memory_(std::move(memory)),
        geometry_(geometry),
        layout_(layout),
        input_(input),
        output_(output),
        creator_pid_(creator_pid) {}

  static RingView attach_ring(const SharedMemory& memory, std::uint64_t offset, std::uint64_t bytes,
                              const Geometry& geometry, const std::string& what) {
    RingView ring;
    try {
      ring = RingView::attach_in(memory.data() + offset, bytes);
    } catch (const RingLayoutError& error) {
      throw BridgeError(what + ": ring at offset " + std::to_string(offset) + ": " + error.what());
    }
    if (ring.channels() != geometry.channels ||
        ring.capacity_frames() != geometry.ring_capacity_frames) {
      throw BridgeError(what + ": ring at offset " + std::to_string(offset) +
                        " disagrees with the bridge header's geometry");
    }
    return ring;
  }

  BridgeHeader* header() const noexcept { return reinterpret_cast<BridgeHeader*>(memory_.data()); }
  std::atomic<float>* params() const noexcept {
    return reinterpret_cast<std::atomic<float>*>(memory_.data() + layout_.params_offset);
  }

  SharedMemory memory_;
  Geometry geometry_;
  Layout layout_;
  RingView input_;
  RingView output_;
  std::uint32_t creator_pid_;
};

inline constexpr std::uint32_t kDoorbellMagic = 0x42445553u;  // "SUDB" in memory order
inline constexpr std::uint32_t kDoorbellVersion = 1;

/// Fixed description of the doorbell, written once by the server that creates it.
struct DoorbellDescriptor {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t server_pid;
  std::uint32_t total_bytes;
};
static_assert(std::is_trivially_copyable_v<DoorbellDescriptor>);

struct alignas(64) DoorbellHeader {
  DoorbellDescriptor descriptor;
  WakeWord ring;
};
static_assert(std::is_standard_layout_v<DoorbellHeader>);
static_assert(offsetof(DoorbellHeader, ring) == 64);
static_assert(sizeof(DoorbellHeader) == 128);

/// The server's doorbell, seen from either side. Move-only.
class Doorbell {
 public:
  /// Server: creates the doorbell `name` (FileExists if the name is taken) holding this process's pid.
  static Doorbell create(const std::string& name) {
    SharedMemory memory = SharedMemory::create(name, sizeof(DoorbellHeader));
    auto* header = new (memory.data()) DoorbellHeader{};
    DoorbellDescriptor d{};
    d.version = kDoorbellVersion;
    d.server_pid = static_cast<std::uint32_t>(::getpid());
    d.total_bytes = sizeof(DoorbellHeader);
    std::memcpy(&header->descriptor, &d, sizeof d);
    std::atomic_thread_fence(std::memory_order_release);
    header->descriptor.magic = kDoorbellMagic;  // last: a half-written doorbell is refused on attach
    return Doorbell(std::move(memory), d.server_pid);
  }

  /// Instance: maps the doorbell `name` and validates it; throws BridgeError (foreign or
  /// malformed), std::invalid_argument (wrong owner or mode), std::system_error (absent).
  static Doorbell attach(const std::string& name) {
    SharedMemory memory = SharedMemory::attach(name);
    const std::string what = "doorbell '" + memory.posix_name() + "'";
    if (memory.size_bytes() != sizeof(DoorbellHeader)) {
      throw BridgeError(what + " is " + std::to_string(memory.size_bytes()) + " bytes, not " +
                        std::to_string(sizeof(DoorbellHeader)));
    }
    DoorbellDescriptor d;
    std::memcpy(&d, memory.data(), sizeof d);  // the one read of the descriptor
    if (d.magic != kDoorbellMagic) {
      throw BridgeError(what + " is not a SpeakUp doorbell (magic " + detail::hex(d.magic) + ")");
    }
    if (d.version != kDoorbellVersion) {
      throw BridgeError(what + " speaks doorbell version " + std::to_string(d.version) +
                        "; this build speaks " + std::to_string(kDoorbellVersion));
    }
    if (d.total_bytes != sizeof(DoorbellHeader)) {
      throw BridgeError(what + " says it is " + std::to_string(d.total_bytes) + " bytes, not " +
                        std::to_string(sizeof(DoorbellHeader)));
    }
    if (d.server_pid == 0) throw BridgeError(what + " names no server (pid 0)");
    return Doorbell(std::move(memory), d.server_pid);
  }

  Doorbell(Doorbell&&) noexcept = default;
  Doorbell& operator=(Doorbell&&) noexcept = default;

  const SharedMemory& memory() const noexcept { return memory_; }
  /// The pid of the server that created it, as read at create/attach (never re-read).
  std::uint32_t server_pid() const noexcept { return server_pid_; }
  /// True once the doorbell was truncated under us (see sigbus_guard.hpp): ringing reaches no one.
  bool broken() const noexcept { return memory_.broken(); }

  /// True while doorbell_name() still leads here: a server re-creates a doorbell that was removed
  /// or replaced, and an instance then attaches the new one (a system call: not real-time).
  bool still_named() const noexcept { return memory_.still_named(); }

  /// Instance, after writing input to its segment: never blocks.
  void ring() noexcept { detail::notify(header()->ring); }
  std::uint32_t count() const noexcept { return header()->ring.value.load(std::memory_order_acquire); }
  /// Server: sleep while count() == seen, at most timeout_ns; true if it changed.
  bool wait(std::uint32_t seen, std::uint64_t timeout_ns) noexcept {
    return detail::wait(header()->ring, seen, timeout_ns);
  }

  /// Removes the doorbell's name (the server does this when it exits).
  void unlink() const { memory_.unlink(); }

 private:
  Doorbell(SharedMemory memory, std::uint32_t server_pid)
      : memory_(std::move(memory)), server_pid_(server_pid) {}

  DoorbellHeader* header() const noexcept { return reinterpret_cast<DoorbellHeader*>(memory_.data()); }

  SharedMemory memory_;
  std::uint32_t server_pid_;
};

}  // namespace speakup::bridge
