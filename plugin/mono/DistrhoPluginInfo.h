// DPF plugin description of the mono variant (DPF finds this file by name on the include path).
#pragma once

#define DISTRHO_PLUGIN_NAME "SpeakUp Mono"
#define DISTRHO_PLUGIN_URI "urn:speakup-fx:speakup-mono"
#define DISTRHO_PLUGIN_CLAP_ID "fx.speakup.speakup-mono"
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Restoration|Mono"
#define DISTRHO_PLUGIN_NUM_INPUTS 1
#define DISTRHO_PLUGIN_NUM_OUTPUTS 1
#define SPEAKUP_PLUGIN_UNIQUE_ID d_cconst('S', 'p', 'U', 'm')

#include "../DistrhoPluginInfoCommon.h"
