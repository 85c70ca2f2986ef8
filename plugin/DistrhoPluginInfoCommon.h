// DPF settings shared by the mono and stereo variants.
#pragma once

#define DISTRHO_PLUGIN_BRAND "SpeakUp FX"
#define DISTRHO_PLUGIN_BRAND_ID SpUp
#define DISTRHO_PLUGIN_HAS_UI 0
#define DISTRHO_PLUGIN_IS_RT_SAFE 1
#define DISTRHO_PLUGIN_WANT_LATENCY 1
#define DISTRHO_PLUGIN_WANT_PROGRAMS 1
#define DISTRHO_PLUGIN_WANT_TIMEPOS 1  // an offline render starts with the transport

// MIDI CC input drives parameters through the current program's MIDI map; the plugin then asks
// the host to take the new value (a parameter change request). Off only in the tests' LADSPA
// build (SPEAKUP_MIDI_INPUT=0, plugin/CMakeLists.txt): LADSPA has neither.
#ifndef SPEAKUP_MIDI_INPUT
#define SPEAKUP_MIDI_INPUT 1
#endif
#define DISTRHO_PLUGIN_WANT_MIDI_INPUT SPEAKUP_MIDI_INPUT
#define DISTRHO_PLUGIN_WANT_PARAMETER_VALUE_CHANGE_REQUEST SPEAKUP_MIDI_INPUT
