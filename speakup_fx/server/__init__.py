"""The model server behind SpeakUp.vst3: one process per user, one slot per plugin instance.

Only this package knows the bridge protocol (``native/include/speakup/bridge.hpp``):

- each plugin instance creates one shared-memory segment named
  ``speakup-u<uid>-<hash of the runtime dir>-<pid>-<n>`` (``bridge_segment_prefix()``)
  (a new name on every activation, so a new name is a new stream);
- its parameter block holds the values of ``speakup_fx.params.PARAMS`` in order, then
  the index of the current program in ``speakup_fx.presets.list_presets()`` (its chain options;
  an index outside that list, as before any program is loaded, means ``ChainOptions()``);
- the server creates one doorbell segment (``bridge_doorbell_name()``, holding its pid) and sleeps on
  its futex word; an instance rings it after writing input while the doorbell's pid is the one its
  segment names as its server (else it wakes its segment's own word, and the server finds the block
  when its poll ends);
- the server's output must trail its input by exactly the segment's ``wet_latency_samples``:
  the engine's own latency plus zero padding (the plugin adds its bridge block on top and
  reports the sum to its host, see plugin/SpeakUpPlugin.cpp).
"""
