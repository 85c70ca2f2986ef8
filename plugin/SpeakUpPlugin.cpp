// SpeakUp as a VST3 plugin (DPF): parameters, programs, a fixed latency, and the bridge
// client that streams each instance through the per-user model server (`speakup serve`).
//
// Latency: L = ceil(kEngineLatencyBoundMs * sample_rate / 1000) + kBridgeBlockFrames
// (plugin/generate_header.py). It depends on the sample rate only, so it is known in
// the constructor and sampleRateChanged() before any activation and never changes
// while the server comes and goes. The server delays its output by exactly
// W = L - kBridgeBlockFrames (engine latency plus zero padding); the plugin plays the
// server's output kBridgeBlockFrames later still, so it has that long to arrive.
//
// Without a server (not installed, not yet started, dead, late) the output is the dry
// input delayed by L: the same alignment, so switching between the two is a crossfade
// (fading in; a server that vanishes can only be cut to dry, its audio is gone).
//
// Wake-ups: after writing input the audio thread rings the server's doorbell (one futex word
// the server sleeps on for all its slots; native/include/speakup/bridge.hpp) when it holds the
// doorbell of the server its segment names, else its segment's own server_wake word (a server
// without a doorbell polls). The worker attaches the doorbell, and re-attaches it after a server
// restart, a removal or a truncation; the audio thread only compares two pids per block.
//
// Threads: the audio thread (run) never blocks in real-time mode, never allocates, never
// makes a system call other than the futex wake. A worker thread per active instance
// (started in activate(), never in the constructor: DPF constructs plugins several times
// while loading) does everything else: it waits for the first run() call, creates the
// instance's segment, starts the server if none runs, watches the server's heartbeat and
// opens a fresh segment (= a fresh server-side stream) after a server died, a ring was
// found corrupt or the server dropped the slot. It acts only while the host calls run()
// (within the last second) and gives the stream back after 5 s without run() calls, so
// a stopped (or leaked) instance never keeps a server alive or restarts one. Segments pass from the worker to the
// audio thread through one atomic pointer and come back through another for deletion.
//
// Offline rendering: DPF's VST3 wrapper ignores the host's process mode, so the build
// patches it (plugin/CMakeLists.txt) to call speakup_vst3_set_process_mode() from
// setupProcessing() and process() (Ardour says "offline" only in the latter). Offline, run()
// waits for the server's output (bounded: as long as the server's heartbeat advances, plus
// kServerStartTimeoutMs for it to attach; see ServerLiveness) so a bounce is exact; a dead server still yields
// the dry signal, never a hang. An offline render starts a fresh stream when the host's
// transport starts, so it does not depend on what the instance processed before.
//
// MIDI: a control change drives the parameter the current program's MIDI map names (the
// preset's [midi] table; none before a program is loaded), over its range as
// SpeakUp.handle_midi does (plain_from_normalised(value / 127), generated), from the CC's
// frame on. The host is asked to take the new value (a parameter change request; hosts that
// read the processor's output changes show it, pedalboard's JUCE 7 does not). The VST3
// wrapper offers only the CCs some preset maps (patched, plugin/CMakeLists.txt).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "DistrhoPlugin.hpp"
#include "ServerLauncher.hpp"
#include "SpeakUpInfo.hpp"
#include "speakup/bridge.hpp"

START_NAMESPACE_DISTRHO

namespace {

using speakup::bridge::Doorbell;
using speakup::bridge::Segment;
using speakup::info::kBridgeBlockFrames;
using speakup::info::kParamCount;
using speakup::info::kParams;
using speakup::info::kProgramCount;
using speakup::info::kPrograms;

constexpr std::uint32_t kChannels = DISTRHO_PLUGIN_NUM_INPUTS;
constexpr std::uint32_t kFadeFrames = 256;
constexpr std::int64_t kHeartbeatTimeoutMs = 2000;     // a server silent this long is dead
constexpr std::int64_t kServerStartTimeoutMs = 30000;  // offline: python + torch import + engine
constexpr std::int64_t kRestartBackoffMs = 5000;
constexpr std::int64_t kActiveWindowMs = 1000;  // run() called this recently: the host is running us
constexpr std::int64_t kIdleReleaseMs = 5000;   // no run() for this long: give the stream back
constexpr std::int64_t kDoorbellRetryMs = 1000;  // after a doorbell was absent, stale or refused
constexpr int kVst3ProcessModeOffline = 2;  // V3_OFFLINE
constexpr int kMidiCcMax = 127;

std::uint32_t wet_latency_samples_at(double sample_rate) {
  return static_cast<std::uint32_t>(std::ceil(speakup::info::kEngineLatencyBoundMs * sample_rate / 1000.0));
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::atomic<std::uint64_t> g_instances{0};  // numbers this process's segments

/// When a segment's server last showed life: its heartbeat advanced, or it attached. A server
/// publishes its pid before its first beat on that segment, and may attach seconds after the
/// segment appeared (its first engine build takes that long): timing its silence from before
/// the attach would declare a server dead in the instant it starts serving.
class ServerLiveness {
 public:
  ServerLiveness(const Segment& segment, std::int64_t now)
      : beat_(segment.server_heartbeat()), attached_(segment.server_pid() != 0), since_ms_(now) {}

  /// True once the server was silent longer than it may be: kServerStartTimeoutMs until it
  /// attached, kHeartbeatTimeoutMs after.
  bool silent(const Segment& segment, std::int64_t now) {
    const std::uint64_t beat = segment.server_heartbeat();
    const bool attached = segment.server_pid() != 0;
    if (beat != beat_ || attached != attached_) {
      beat_ = beat;
      attached_ = attached;
      since_ms_ = now;
    }
    return now - since_ms_ > (attached_ ? kHeartbeatTimeoutMs : kServerStartTimeoutMs);
  }

 private:
  std::uint64_t beat_;
  bool attached_;
  std::int64_t since_ms_;
};

}  // namespace

class SpeakUpPlugin : public Plugin {
 public:
  SpeakUpPlugin() : Plugin(kParamCount, kProgramCount, 0) {
    // Start at params.py's defaults: what hosts show before they load a program.
    for (uint32_t i = 0; i < kParamCount; ++i) values_[i].store(kParams[i].default_value);
    resize(getSampleRate());
  }

  ~SpeakUpPlugin() override { stop_worker(); }

  /// From the host's process mode (setupProcessing, and every process() call).
  void set_offline(bool offline) { offline_.store(offline); }

 protected:
  const char* getLabel() const override { return "SpeakUp"; }
  const char* getDescription() const override {
    return "Speech enhancement (denoise, dereverb, EQ, dynamics) served by one model server per user";
  }
  const char* getMaker() const override { return "SpeakUp FX"; }
  const char* getLicense() const override { return "MIT"; }
  uint32_t getVersion() const override { return d_version(0, 1, 0); }
  int64_t getUniqueId() const override { return SPEAKUP_PLUGIN_UNIQUE_ID; }

  void initParameter(uint32_t index, Parameter& parameter) override {
    const auto& info = kParams[index];
    parameter.hints = kParameterIsAutomatable;
    parameter.name = info.name;
    parameter.symbol = info.name;
    // No `unit`: the name already ends with it, and hosts such as pedalboard append the unit.
    parameter.description = info.help;
    parameter.ranges.def = info.default_value;
    parameter.ranges.min = info.minimum;
    parameter.ranges.max = info.maximum;
  }

  void initProgramName(uint32_t index, String& name) override { name = kPrograms[index].name; }

  float getParameterValue(uint32_t index) const override { return values_[index].load(); }

  void setParameterValue(uint32_t index, float value) override {
    const auto& info = kParams[index];
    values_[index].store(std::fmin(std::fmax(value, info.minimum), info.maximum));
    params_changed_.store(true, std::memory_order_release);
  }

  void loadProgram(uint32_t index) override {
    program_.store(index);
    for (uint32_t i = 0; i < kParamCount; ++i) values_[i].store(kPrograms[index].values[i]);
    params_changed_.store(true, std::memory_order_release);
  }

  void activate() override {
    clear_state();
    start_worker();
  }

  void deactivate() override {
    stop_worker();
    clear_state();
  }

  void sampleRateChanged(double sample_rate) override { resize(sample_rate); }
  void bufferSizeChanged(uint32_t) override { resize(getSampleRate()); }

#if DISTRHO_PLUGIN_WANT_MIDI_INPUT
  void run(const float** inputs, float** outputs, uint32_t frames, const MidiEvent* events,
           uint32_t event_count) override {
    uint32_t done = 0;
    for (uint32_t e = 0; e < event_count; ++e) {  // DPF hands them over sorted by frame
      const uint32_t frame = std::min(events[e].frame, frames);
      if (frame > done) {
        run_span(inputs, outputs, done, frame - done);
        done = frame;
      }
      apply_midi(events[e]);
    }
    if (done < frames || frames == 0) run_span(inputs, outputs, done, frames - done);
  }
#else
  void run(const float** inputs, float** outputs, uint32_t frames) override {
    run_span(inputs, outputs, 0, frames);
  }
#endif

 private:
  /// Audio thread: processes frames [offset, offset + frames) of the host's buffers.
  void run_span(const float** inputs, float** outputs, uint32_t offset, uint32_t frames) {
    processing_started_.store(true, std::memory_order_release);
    runs_.fetch_add(1, std::memory_order_relaxed);
    if (released_.exchange(false, std::memory_order_acq_rel)) session_ok_ = false;
    // A DAW does not reset its plugins for an export, and runs them (silence, stopped transport)
    // for a while before: an offline render gets a fresh stream when the transport starts, so
    // what it renders does not depend on what the plugin processed before.
    const bool playing = getTimePosition().playing;
    if (playing && !was_playing_ && offline_.load(std::memory_order_relaxed) && current_ != nullptr) {
      session_ok_ = false;  // the worker opens a fresh stream; the dry path starts from silence too
      reconnect_.store(true, std::memory_order_release);
      for (auto& line : delay_) std::fill(line.begin(), line.end(), 0.0f);
    }
    was_playing_ = playing;
    if (offline_.load(std::memory_order_relaxed) && (current_ == nullptr || !session_ok_)) {
      // A bounce must not run ahead of its stream: the worker makes one within ~10 ms of the
      // first run() call, or of a failed session, when a server runs or is starting (and
      // says so when none will: then the bounce goes on dry).
      for (int i = 0; i < 2000 && pending_.load(std::memory_order_acquire) == nullptr &&
                      !(worker_decided_.load(std::memory_order_acquire) && !server_expected_.load());
           ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        runs_.fetch_add(1, std::memory_order_relaxed);
      }
    }
    take_new_segment();
    take_new_doorbell();
    for (uint32_t done = 0; done < frames;) {  // hosts may exceed the announced block size
      const uint32_t n = std::min<uint32_t>(frames - done, max_block_);
      const float* in[kChannels];
      float* out[kChannels];
      for (uint32_t c = 0; c < kChannels; ++c) {
        in[c] = inputs[c] + offset + done;
        out[c] = outputs[c] + offset + done;
      }
      run_block(in, out, n);
      done += n;
    }
  }

  // ---- audio thread ----------------------------------------------------------------

#if DISTRHO_PLUGIN_WANT_MIDI_INPUT
  /// A control change through the current program's MIDI map; other messages are ignored.
  void apply_midi(const MidiEvent& event) {
    constexpr uint8_t kControlChange = 0xB0;
    if (event.size != 3 || (event.data[0] & 0xF0) != kControlChange) return;
    const int slot = speakup::info::midi_cc_slot(event.data[1]);
    const uint32_t program = program_.load(std::memory_order_relaxed);
    if (slot < 0 || program >= kProgramCount) return;
    const int target = kPrograms[program].midi_targets[slot];
    if (target < 0) return;
    const auto index = static_cast<uint32_t>(target);
    const float value = speakup::info::plain_from_normalised(kParams[index], event.data[2] / float(kMidiCcMax));
    setParameterValue(index, value);
    requestParameterValueChange(index, value);  // the wrapper reports getParameterValue(index) to the host
  }
#endif

  void run_block(const float** in, float** out, uint32_t n) {
    delay_dry(in, n);  // dry_[c][0..n): the input L frames ago
    uint32_t wet_begin = 0, wet_end = 0;  // the frames of wet_ that hold server output
    if (Segment* segment = current_) {
      exchange_with_server(*segment, in, n, wet_begin, wet_end);
    }
    for (uint32_t i = 0; i < n; ++i) {
      const bool wet = i >= wet_begin && i < wet_end;
      gain_ = wet ? std::fmin(gain_ + 1.0f / kFadeFrames, 1.0f) : 0.0f;
      for (uint32_t c = 0; c < kChannels; ++c) {
        const float dry = dry_[c][i];
        out[c][i] = wet ? dry + gain_ * (wet_[c][i] - dry) : dry;
      }
    }
    host_frames_ += n;
  }

  /// Sends n input frames, collects the server's output for this block's wet indices.
  void exchange_with_server(Segment& segment, const float** in, uint32_t n, uint32_t& wet_begin,
                            uint32_t& wet_end) {
    if (!session_ok_) return;
    if (params_changed_.exchange(false, std::memory_order_acq_rel)) write_params(segment);
    if (segment.input().write(in, n) != n) {  // server stalled: this stream can no longer align
      session_ok_ = false;
      reconnect_.store(true, std::memory_order_release);
      return;
    }
    wake_server(segment);
    // Output frame i of this block plays wet index k + i (server output starts with the session).
    const std::int64_t k = static_cast<std::int64_t>(host_frames_ - session_start_) - kBridgeBlockFrames;
    if (k + n <= 0) return;
    const std::int64_t first = std::max<std::int64_t>(k, 0);
    if (offline_.load(std::memory_order_relaxed)) wait_for_output(segment, k + n);
    discard_stale(segment, first);
    if (received_ < static_cast<std::uint64_t>(first)) return;  // still late
    float* wet[kChannels];
    for (uint32_t c = 0; c < kChannels; ++c) wet[c] = wet_[c].data() + (first - k);
    const std::uint64_t got = segment.output().read(wet, static_cast<std::uint64_t>(k + n - first));
    received_ += got;
    wet_begin = static_cast<uint32_t>(first - k);
    wet_end = wet_begin + static_cast<uint32_t>(got);
    for (uint32_t i = wet_begin; i < wet_end; ++i) {  // a peer's NaN must not reach the host
      for (uint32_t c = 0; c < kChannels; ++c) {
        if (!std::isfinite(wet_[c][i])) {
          wet_end = i;
          break;
        }
      }
    }
  }

  /// Offline only: waits until the server has produced `needed` wet frames, as long as it
  /// lives (heartbeat) or, before it attached, as long as it may take to start.
  void wait_for_output(Segment& segment, std::int64_t needed) {
    ServerLiveness liveness(segment, now_ms());
    while (static_cast<std::int64_t>(received_ + segment.output().available()) < needed) {
      const std::uint32_t seen = segment.client_wake_count();
      if (static_cast<std::int64_t>(received_ + segment.output().available()) >= needed) return;
      segment.wait_client(seen, 5'000'000);
      runs_.fetch_add(1, std::memory_order_relaxed);  // still running us: the worker stays active
      if (liveness.silent(segment, now_ms()) || segment.broken() || segment.output().corrupt() ||
          !server_expected_.load(std::memory_order_acquire)) {
        session_ok_ = false;  // no server for this session: dry until the worker opens a new one
        reconnect_.store(true, std::memory_order_release);
        return;
      }
    }
  }

  /// Rings the doorbell of the server serving `segment`, or wakes the segment's own word.
  void wake_server(Segment& segment) {
    if (doorbell_ != nullptr && doorbell_->server_pid() == segment.server_pid() && !doorbell_->broken()) {
      doorbell_->ring();
    } else {
      segment.wake_server();
    }
  }

  void discard_stale(Segment& segment, std::int64_t first) {
    while (received_ < static_cast<std::uint64_t>(first)) {
      float* scratch[kChannels];
      for (uint32_t c = 0; c < kChannels; ++c) scratch[c] = wet_[c].data();
      const std::uint64_t got = segment.output().read(
          scratch, std::min<std::uint64_t>(first - received_, wet_[0].size()));
      if (got == 0) return;
      received_ += got;
    }
  }

  /// Audio thread, or the worker before publishing a segment. The program index goes last:
  /// the server starts a stream only once every slot of the block was written.
  void write_params(Segment& segment) {
    for (uint32_t i = 0; i < kParamCount; ++i) segment.set_param(i, values_[i].load());
    segment.set_param(kParamCount, static_cast<float>(program_.load()));
  }

  /// Adopts a segment the worker published; hands the previous one back for deletion.
  void take_new_segment() {
    Segment* fresh = pending_.load(std::memory_order_acquire);
    if (fresh == nullptr || retired_.load(std::memory_order_acquire) != nullptr) return;
    pending_.store(nullptr, std::memory_order_relaxed);
    retired_.store(current_, std::memory_order_release);
    current_ = fresh;
    session_start_ = host_frames_;
    received_ = 0;
    session_ok_ = true;
    gain_ = 0.0f;
  }

  /// Adopts a doorbell the worker attached; hands the previous one back for deletion.
  void take_new_doorbell() {
    Doorbell* fresh = doorbell_pending_.load(std::memory_order_acquire);
    if (fresh == nullptr || doorbell_retired_.load(std::memory_order_acquire) != nullptr) return;
    doorbell_pending_.store(nullptr, std::memory_order_relaxed);
    doorbell_retired_.store(doorbell_, std::memory_order_release);
    doorbell_ = fresh;
  }

  void delay_dry(const float** in, uint32_t n) {
    const std::size_t length = delay_[0].size();
    for (uint32_t i = 0; i < n; ++i) {
      for (uint32_t c = 0; c < kChannels; ++c) {
        const float sample = in[c][i];  // read before writing: in and out may alias
        dry_[c][i] = delay_[c][position_];
        delay_[c][position_] = sample;
      }
      position_ = position_ + 1 == length ? 0 : position_ + 1;
    }
  }

  // ---- worker thread -----------------------------------------------------------------

  void start_worker() {
    stop_ = false;
    worker_ = std::thread([this] { work(); });
  }

  void stop_worker() {
    if (!worker_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    worker_.join();
    // The audio thread is not running now (deactivate / destruction): free everything.
    delete pending_.exchange(nullptr);
    delete retired_.exchange(nullptr);
    retire(current_);
    current_ = nullptr;
    delete doorbell_pending_.exchange(nullptr);
    delete doorbell_retired_.exchange(nullptr);
    delete doorbell_;
    doorbell_ = nullptr;
  }

  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    Segment* live = nullptr;  // the newest segment published (owned by the audio thread once taken)
    std::optional<ServerLiveness> liveness;  // live's server
    std::int64_t started_ms = -kRestartBackoffMs;
    std::uint64_t runs_seen = 0;
    std::int64_t last_run_ms = now_ms();
    Doorbell* doorbell = nullptr;  // the newest doorbell published (owned by the audio thread once taken)
    std::int64_t doorbell_tried_ms = -kDoorbellRetryMs;
    while (!wake_.wait_for(lock, std::chrono::milliseconds(10), [this] { return stop_; })) {
      if (!processing_started_.load(std::memory_order_acquire)) continue;
      retire(retired_.exchange(nullptr, std::memory_order_acq_rel));
      delete doorbell_retired_.exchange(nullptr, std::memory_order_acq_rel);
      if (pending_.load() != nullptr) continue;  // the audio thread has not taken the last one yet
      const std::int64_t now = now_ms();
      if (runs_.load(std::memory_order_relaxed) != runs_seen) {
        runs_seen = runs_.load(std::memory_order_relaxed);
        last_run_ms = now;
      }
      // Only an instance the host is running keeps a stream and (re)starts servers: a stopped
      // transport, or an instance a host leaked, lets the server go idle and exit.
      if (now - last_run_ms > kActiveWindowMs) {
        if (live != nullptr && now - last_run_ms > kIdleReleaseMs) {
          release(live);  // the audio thread drops it (and asks for a fresh one) when run() resumes
          live = nullptr;
          released_.store(true, std::memory_order_release);
        }
        continue;
      }
      bool fresh_needed = live == nullptr || reconnect_.exchange(false) || live->broken();
      if (live != nullptr && !fresh_needed) {
        const bool dropped = live->server_pid() != 0 && !segment_exists(*live);  // server restarted the stream
        fresh_needed = liveness->silent(*live, now) || dropped;
      }
      const bool running = speakup::plugin::server_running();
      if (!running && now - started_ms > kRestartBackoffMs && speakup::plugin::start_server(interpreter_)) {
        started_ms = now;
      }
      server_expected_.store(running || now - started_ms < kServerStartTimeoutMs, std::memory_order_release);
      worker_decided_.store(true, std::memory_order_release);
      if (!fresh_needed && now - doorbell_tried_ms >= kDoorbellRetryMs &&
          refresh_doorbell(*live, doorbell)) {
        doorbell_tried_ms = now;  // absent, stale or refused: try again later
      }
      if (!fresh_needed || !server_expected_.load(std::memory_order_relaxed)) continue;
      live = create_segment();
      doorbell_tried_ms = -kDoorbellRetryMs;  // a new stream may have a new server: look at once
      if (live == nullptr) continue;
      liveness.emplace(*live, now);
      write_params(*live);  // before the audio thread (or the server) uses it
      pending_.store(live, std::memory_order_release);
    }
  }

  /// Worker: makes sure the audio thread gets the doorbell of the server that serves `live`
  /// (`doorbell`: the newest one published). True if one was needed but none could be had.
  bool refresh_doorbell(const Segment& live, Doorbell*& doorbell) {
    const std::uint32_t server = live.server_pid();
    if (server == 0 || doorbell_pending_.load(std::memory_order_acquire) != nullptr) return false;
    if (doorbell != nullptr && doorbell->server_pid() == server && !doorbell->broken() && doorbell->still_named()) {
      return false;
    }
    try {
      auto fresh = std::make_unique<Doorbell>(Doorbell::attach(speakup::bridge::doorbell_name()));
      if (fresh->server_pid() != server) return true;  // a dead server's: its successor replaces it
      doorbell = fresh.release();
      doorbell_pending_.store(doorbell, std::memory_order_release);
      return false;
    } catch (const std::system_error&) {
      return true;  // none: a server that could not make one polls its slots
    } catch (const std::exception& error) {
      d_stderr("SpeakUp: refusing the server's doorbell: %s", error.what());
      return true;
    }
  }

  Segment* create_segment() {
    speakup::bridge::Geometry geometry;
    geometry.channels = kChannels;
    geometry.sample_rate_hz = static_cast<std::uint32_t>(std::lround(getSampleRate()));
    geometry.block_frames = max_block_;
    geometry.param_count = kParamCount + 1;  // the parameters, then the program index
    geometry.wet_latency_samples = wet_latency_samples_at(getSampleRate());
    geometry.ring_capacity_frames = wet_capacity();
    try {
      return new Segment(Segment::create(speakup::bridge::segment_name(g_instances.fetch_add(1)), geometry));
    } catch (const std::exception& error) {
      d_stderr("SpeakUp: cannot create the bridge segment: %s", error.what());
      return nullptr;
    }
  }

  static bool segment_exists(const Segment& segment) {
    struct stat info {};
    return ::stat(("/dev/shm" + segment.memory().posix_name()).c_str(), &info) == 0;
  }

  /// Removes a segment's name (the server then closes its slot); the mapping stays valid.
  static void release(Segment* segment) {
    try {
      segment->unlink();
    } catch (const std::exception&) {
      // the server or the worker removed it already
    }
  }

  static void retire(Segment* segment) {
    if (segment == nullptr) return;
    release(segment);
    delete segment;
  }

  // ---- state -------------------------------------------------------------------------

  std::uint32_t wet_capacity() const {
    return wet_latency_samples_at(getSampleRate()) + kBridgeBlockFrames + 4 * max_block_;
  }

  /// Not real-time: sizes the dry delay line and scratch buffers; reports the latency.
  void resize(double sample_rate) {
    const std::uint32_t latency = wet_latency_samples_at(sample_rate) + kBridgeBlockFrames;
    max_block_ = std::max<uint32_t>(getBufferSize(), 32);
    for (uint32_t c = 0; c < kChannels; ++c) {
      delay_[c].assign(latency, 0.0f);
      dry_[c].assign(max_block_, 0.0f);
      wet_[c].assign(max_block_, 0.0f);
    }
    position_ = 0;
    setLatency(latency);
  }

  void clear_state() {
    for (auto& line : delay_) std::fill(line.begin(), line.end(), 0.0f);
    position_ = 0;
    host_frames_ = 0;
    gain_ = 0.0f;
    processing_started_.store(false);
    worker_decided_.store(false);
  }

  std::atomic<float> values_[kParamCount];
  std::atomic<uint32_t> program_{kProgramCount};  // none loaded yet: the server runs the default chain
  std::atomic<bool> params_changed_{true};
  std::atomic<bool> offline_{false};

  // audio thread
  std::vector<float> delay_[kChannels], dry_[kChannels], wet_[kChannels];
  std::size_t position_ = 0;
  uint32_t max_block_ = 32;
  std::uint64_t host_frames_ = 0, session_start_ = 0, received_ = 0;
  bool session_ok_ = false;
  bool was_playing_ = false;  // the host's transport, at the last run()
  float gain_ = 0.0f;
  Segment* current_ = nullptr;
  Doorbell* doorbell_ = nullptr;

  // shared with the worker
  std::atomic<Segment*> pending_{nullptr};
  std::atomic<Segment*> retired_{nullptr};
  std::atomic<Doorbell*> doorbell_pending_{nullptr};
  std::atomic<Doorbell*> doorbell_retired_{nullptr};
  std::atomic<bool> processing_started_{false};
  std::atomic<bool> reconnect_{false};
  std::atomic<bool> released_{false};  // the worker gave the current stream back while idle
  std::atomic<std::uint64_t> runs_{0};  // run() calls, for the worker to see the host is running us
  std::atomic<bool> server_expected_{false};  // a server runs or is starting: offline waits for it
  std::atomic<bool> worker_decided_{false};   // server_expected_ holds the worker's first verdict

  // worker
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  const std::string interpreter_ = speakup::plugin::recorded_interpreter();

  DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(SpeakUpPlugin)
};

Plugin* createPlugin() { return new SpeakUpPlugin(); }

END_NAMESPACE_DISTRHO

/// Called by the patched VST3 wrapper from setupProcessing() (see plugin/CMakeLists.txt).
void speakup_vst3_set_process_mode(void* plugin, int32_t process_mode) {
  static_cast<DISTRHO::SpeakUpPlugin*>(plugin)->set_offline(process_mode == DISTRHO::kVst3ProcessModeOffline);
}
