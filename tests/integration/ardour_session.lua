-- Run by tests/integration/test_plugin_ardour.py with ardour7-lua (headless, dummy backend).
-- Creates SPEAKUP_SESSION_DIR with a stereo track holding one recorded take of
-- SPEAKUP_TAKE_SECONDS (Ardour 7's Lua has no file import: the test overwrites the take's
-- files with speech afterwards), then inserts SpeakUp.vst3 on the track, selects its program
-- SPEAKUP_PROGRAM, and saves.

local dir = os.getenv("SPEAKUP_SESSION_DIR")
local take_us = math.floor(tonumber(os.getenv("SPEAKUP_TAKE_SECONDS")) * 1e6)

AudioEngine:set_backend("None (Dummy)", "", "")
assert(create_session(dir, "speech", 48000), "cannot create the session")

local track = Session:new_audio_track(2, 2, nil, 1, "speech", ARDOUR.PresentationInfo.max_order,
                                      ARDOUR.TrackMode.Normal, true):front()
track:rec_enable_control():set_value(1, PBD.GroupControlDisposition.NoGroup)
Session:maybe_enable_record(false)
Session:request_roll(ARDOUR.TransportRequestSource.TRS_UI)
ARDOUR.LuaAPI.usleep(take_us)
Session:request_stop(false, false, ARDOUR.TransportRequestSource.TRS_UI)
while Session:transport_rolling() do ARDOUR.LuaAPI.usleep(10000) end
track:rec_enable_control():set_value(0, PBD.GroupControlDisposition.NoGroup)

local proc = ARDOUR.LuaAPI.new_plugin(Session, "SpeakUp", ARDOUR.PluginType.VST3, "")
assert(not proc:isnil(), "SpeakUp.vst3 is not in Ardour's plugin list")
assert(track:add_processor_by_index(proc, 0, nil, true) == 0, "cannot insert SpeakUp")
local insert = proc:to_insert()
local plugin = insert:plugin(0)
-- Select the program as Ardour's preset menu does (its factory presets are the plugin's programs),
-- while the engine runs the plugin.
local preset = plugin:preset_by_label(os.getenv("SPEAKUP_PROGRAM"))
assert(preset, "SpeakUp has no program " .. os.getenv("SPEAKUP_PROGRAM"))
assert(plugin:load_preset(preset), "cannot load the program")
-- The program's parameter values reach Ardour with the next process cycles; its saved state must hold them.
ARDOUR.LuaAPI.usleep(500000)
print("latency", proc:signal_latency())

Session:save_state("", false, false, false, false, false)
close_session()
quit()
