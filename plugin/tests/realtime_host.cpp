// A minimal real-time host for the plugin's tests: loads the LADSPA build of SpeakUp (same
// source as the VST3; DPF's LADSPA wrapper never reports offline, so the plugin runs in
// real-time mode), feeds a deterministic stereo signal in 256-frame blocks paced by the
// clock, and records input, output and how long each run() call took.
//
// usage: realtime_host PLUGIN.so SECONDS OUT_PREFIX PARAM_VALUE...
// runs SECONDS at most, or until the file OUT_PREFIX.stop appears (the test decides when it has
// seen enough); writes OUT_PREFIX.in and OUT_PREFIX.out (float32, channel-planar, 2 x frames
// run) and OUT_PREFIX.run_us (float32, one per block); prints the latency the plugin reported
// and when the first block played.
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "ladspa/ladspa.h"

namespace {

constexpr unsigned long kSampleRate = 48000;
constexpr unsigned long kBlockFrames = 256;

bool write_file(const std::string& path, const std::vector<float>& data) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return false;
  const bool ok = std::fwrite(data.data(), sizeof(float), data.size(), file) == data.size();
  return std::fclose(file) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PLUGIN.so SECONDS OUT_PREFIX PARAM_VALUE...\n", argv[0]);
    return 2;
  }
  void* module = ::dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (module == nullptr) {
    std::fprintf(stderr, "cannot load %s: %s\n", argv[1], ::dlerror());
    return 2;
  }
  auto descriptor_of = reinterpret_cast<LADSPA_Descriptor_Function>(::dlsym(module, "ladspa_descriptor"));
  const LADSPA_Descriptor* descriptor = descriptor_of != nullptr ? descriptor_of(0) : nullptr;
  if (descriptor == nullptr) {
    std::fprintf(stderr, "%s has no LADSPA descriptor\n", argv[1]);
    return 2;
  }
  const unsigned long blocks = std::strtoul(argv[2], nullptr, 10) * kSampleRate / kBlockFrames;
  const unsigned long frames = blocks * kBlockFrames;
  // Ports: audio ins (2), audio outs (2), latency, then the parameters in order.
  const unsigned long params = static_cast<unsigned long>(argc - 4);
  if (descriptor->PortCount != 5 + params) {
    std::fprintf(stderr, "plugin has %lu ports, expected %lu\n", descriptor->PortCount, 5 + params);
    return 2;
  }
  std::vector<float> input(2 * frames), output(2 * frames), run_us;
  run_us.reserve(blocks);
  for (unsigned long i = 0; i < frames; ++i) {
    const double t = static_cast<double>(i) / kSampleRate;
    const float noise = static_cast<float>((i * 2654435761u) % 65536) / 65536.0f - 0.5f;
    input[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * 220 * t) * (1 + std::sin(2 * M_PI * 3 * t))) + 0.05f * noise;
    input[frames + i] = 0.8f * input[i];
  }
  std::vector<float> controls(params);
  for (unsigned long p = 0; p < params; ++p) controls[p] = std::strtof(argv[4 + p], nullptr);
  float latency = 0.0f;
  LADSPA_Handle instance = descriptor->instantiate(descriptor, kSampleRate);
  descriptor->connect_port(instance, 4, &latency);
  for (unsigned long p = 0; p < params; ++p) descriptor->connect_port(instance, 5 + p, &controls[p]);
  descriptor->activate(instance);
  const std::string prefix(argv[3]);
  const std::string stop = prefix + ".stop";
  const auto first_block = std::chrono::steady_clock::now();
  auto next = first_block;
  for (unsigned long b = 0; b < blocks && ::access(stop.c_str(), F_OK) != 0; ++b) {
    const unsigned long at = b * kBlockFrames;
    descriptor->connect_port(instance, 0, &input[at]);
    descriptor->connect_port(instance, 1, &input[frames + at]);
    descriptor->connect_port(instance, 2, &output[at]);
    descriptor->connect_port(instance, 3, &output[frames + at]);
    const auto start = std::chrono::steady_clock::now();
    descriptor->run(instance, kBlockFrames);
    run_us.push_back(std::chrono::duration<float, std::micro>(std::chrono::steady_clock::now() - start).count());
    next += std::chrono::microseconds(kBlockFrames * 1'000'000 / kSampleRate);
    std::this_thread::sleep_until(next);
  }
  descriptor->deactivate(instance);
  descriptor->cleanup(instance);
  // When frame 0 played, on CLOCK_MONOTONIC (Python's time.monotonic()), for the test to place its events.
  std::printf("latency %.0f\nstarted_s %.6f\n", latency,
              std::chrono::duration<double>(first_block.time_since_epoch()).count());
  const unsigned long run = run_us.size() * kBlockFrames;  // the frames played, of each channel
  const auto played = [&](const std::vector<float>& both) {
    std::vector<float> planar(both.begin(), both.begin() + run);
    planar.insert(planar.end(), both.begin() + frames, both.begin() + frames + run);
    return planar;
  };
  return write_file(prefix + ".in", played(input)) && write_file(prefix + ".out", played(output)) &&
                 write_file(prefix + ".run_us", run_us)
             ? 0
             : 1;
}
