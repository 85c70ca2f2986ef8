// DPF plugin description of the stereo variant (DPF finds this file by name on the include path).
#pragma once

#define DISTRHO_PLUGIN_NAME "SpeakUp"
#define DISTRHO_PLUGIN_URI "urn:speakup-fx:speakup-stereo"
#define DISTRHO_PLUGIN_CLAP_ID "fx.speakup.speakup-stereo"
#define DISTRHO_PLUGIN_VST3_CATEGORIES "Fx|Restoration|Stereo"
#define DISTRHO_PLUGIN_NUM_INPUTS 2
#define DISTRHO_PLUGIN_NUM_OUTPUTS 2
#define SPEAKUP_PLUGIN_UNIQUE_ID d_cconst('S', 'p', 'U', 's')

#include "../DistrhoPluginInfoCommon.h"
