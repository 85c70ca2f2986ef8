// DPF settings shared by the mono and stereo variants.
#pragma once

#define DISTRHO_PLUGIN_BRAND "SpeakUp FX"
#define DISTRHO_PLUGIN_BRAND_ID SpUp
#define DISTRHO_PLUGIN_HAS_UI 0
#define DISTRHO_PLUGIN_IS_RT_SAFE 1
#define DISTRHO_PLUGIN_WANT_LATENCY 1
#define DISTRHO_PLUGIN_WANT_PROGRAMS 1
#define DISTRHO_PLUGIN_WANT_MIDI_INPUT 0
