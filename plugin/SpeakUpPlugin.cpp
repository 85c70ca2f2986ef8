// SpeakUp as a VST3 plugin (DPF): parameters, programs, a fixed latency.
//
// What it does today: the model server (`speakup serve`) and the bridge client that
// talks to it do not exist yet, so every instance runs in its fault mode, which is
// also its permanent fallback: the output is the dry input delayed by exactly the
// reported latency. Parameters and programs already hold the state the server
// will read from the instance's shared-memory parameter block.
//
// No MIDI input yet: DPF 1.6's VST3 wrapper turns MIDI CC input into 16 x 130
// hidden parameters, and pedalboard then needs ~30 s to load the plugin and
// again for every `.parameters` access. MIDI CC through the presets' maps needs
// a wrapper patch that exposes only the mapped CCs (see the issue).
//
// Latency: ceil(kEngineLatencyBoundMs * sample_rate / 1000) + kBridgeBlockFrames
// (see plugin/generate_header.py). It depends on the sample rate only, so it is
// known in the constructor and in sampleRateChanged() before any activation, and
// it never changes while the server comes and goes; the server will pad each
// engine's own delay up to exactly this figure.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "DistrhoPlugin.hpp"
#include "SpeakUpInfo.hpp"

START_NAMESPACE_DISTRHO

namespace {

using speakup::info::kParamCount;
using speakup::info::kParams;
using speakup::info::kProgramCount;
using speakup::info::kPrograms;

constexpr std::uint32_t kChannels = DISTRHO_PLUGIN_NUM_INPUTS;

std::uint32_t latency_samples_at(double sample_rate) {
  return static_cast<std::uint32_t>(
             std::ceil(speakup::info::kEngineLatencyBoundMs * sample_rate / 1000.0)) +
         speakup::info::kBridgeBlockFrames;
}

}  // namespace

class SpeakUpPlugin : public Plugin {
 public:
  SpeakUpPlugin() : Plugin(kParamCount, kProgramCount, 0) {
    // Start at params.py's defaults: what hosts show before they load a program.
    for (uint32_t i = 0; i < kParamCount; ++i) values_[i] = kParams[i].default_value;
    resize_delay(getSampleRate());
  }

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

  float getParameterValue(uint32_t index) const override { return values_[index]; }

  void setParameterValue(uint32_t index, float value) override {
    const auto& info = kParams[index];
    values_[index] = std::fmin(std::fmax(value, info.minimum), info.maximum);
  }

  void loadProgram(uint32_t index) override {
    program_ = index;
    for (uint32_t i = 0; i < kParamCount; ++i) values_[i] = kPrograms[index].values[i];
  }

  void activate() override { clear_state(); }
  void deactivate() override { clear_state(); }

  void sampleRateChanged(double sample_rate) override { resize_delay(sample_rate); }

  void run(const float** inputs, float** outputs, uint32_t frames) override {
    const std::size_t length = delay_[0].size();
    // Sample by sample, every channel's input read before any output is written: hosts may
    // pass the same buffer for input and output.
    for (uint32_t i = 0; i < frames; ++i) {
      float in[kChannels];
      for (uint32_t c = 0; c < kChannels; ++c) in[c] = inputs[c][i];
      for (uint32_t c = 0; c < kChannels; ++c) {
        outputs[c][i] = delay_[c][position_];
        delay_[c][position_] = in[c];
      }
      position_ = position_ + 1 == length ? 0 : position_ + 1;
    }
  }

 private:
  /// Not real-time: allocates the delay line for a new rate and reports the new latency.
  void resize_delay(double sample_rate) {
    const std::uint32_t latency = latency_samples_at(sample_rate);
    for (auto& line : delay_) line.assign(latency, 0.0f);
    position_ = 0;
    setLatency(latency);
  }

  void clear_state() {
    for (auto& line : delay_) std::fill(line.begin(), line.end(), 0.0f);
    position_ = 0;
  }

  float values_[kParamCount] = {};
  uint32_t program_ = 0;
  std::vector<float> delay_[kChannels];
  std::size_t position_ = 0;

  DISTRHO_DECLARE_NON_COPYABLE_WITH_LEAK_DETECTOR(SpeakUpPlugin)
};

Plugin* createPlugin() { return new SpeakUpPlugin(); }

END_NAMESPACE_DISTRHO
