// pybind11 module speakup_fx._native: the ring buffer, shared memory and the bridge segment.
//
// Arrays cross the boundary without conversion: blocks must already be
// float32 (channels, frames) with contiguous frames; anything else raises
// TypeError/ValueError naming the problem. Copies run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "speakup/bridge.hpp"
#include "speakup/ring_buffer.hpp"
#include "speakup/shared_memory.hpp"

namespace py = pybind11;

namespace {

/// A ring plus whatever keeps its memory alive (its own buffer or the segment).
struct PyRing {
  std::shared_ptr<void> storage;
  speakup::RingView view;
};

std::uint64_t non_negative(std::int64_t value, const char* name) {
  if (value < 0) {
    throw py::value_error(std::string(name) + " must be >= 0, got " + std::to_string(value));
  }
  return static_cast<std::uint64_t>(value);
}

std::uint64_t positive(std::int64_t value, const char* name) {
  if (value < 1) {
    throw py::value_error(std::string(name) + " must be >= 1, got " + std::to_string(value));
  }
  return static_cast<std::uint64_t>(value);
}

std::string text_of(const py::handle& object) { return py::str(object).cast<std::string>(); }

/// Checks that `object` is a float32 (channels, frames) array with contiguous frames.
py::array checked_block(const py::object& object, const char* name, std::uint32_t channels,
                        bool writable) {
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " +
                         text_of(py::type::of(object).attr("__name__")));
  }
  auto array = py::reinterpret_borrow<py::array>(object);
  if (!array.dtype().equal(py::dtype::of<float>())) {
    throw py::type_error(std::string(name) + " must be float32, got " +
                         text_of(array.dtype()));
  }
  if (array.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be 2-D (channels, frames), got shape " +
                          text_of(array.attr("shape")));
  }
  if (static_cast<std::uint64_t>(array.shape(0)) != channels) {
    throw py::value_error(std::string(name) + " has " + std::to_string(array.shape(0)) +
                          " channels, the ring has " + std::to_string(channels));
  }
  if (array.shape(1) > 1 && array.strides(1) != static_cast<py::ssize_t>(sizeof(float))) {
    throw py::value_error(std::string(name) +
                          " must have contiguous frames (C-contiguous rows), got strides " +
                          text_of(array.attr("strides")));
  }
  if (writable && !array.writeable()) {
    throw py::value_error(std::string(name) + " is read-only");
  }
  return array;
}

PyRing make_ring(std::int64_t channels, std::int64_t capacity_frames) {
  auto ring = std::make_shared<speakup::RingBuffer>(positive(channels, "channels"),
                                                    positive(capacity_frames, "capacity_frames"));
  speakup::RingView view = ring->view();
  return PyRing{std::move(ring), view};
}

std::pair<void*, std::size_t> region_at(const speakup::SharedMemory& shm, std::int64_t offset_bytes) {
  const std::uint64_t offset = non_negative(offset_bytes, "offset_bytes");
  if (offset >= shm.size_bytes()) {
    throw py::value_error("offset_bytes " + std::to_string(offset) + " is outside the " +
                          std::to_string(shm.size_bytes()) + "-byte segment");
  }
  if (offset % speakup::kRingAlignmentBytes != 0) {
    throw py::value_error("offset_bytes " + std::to_string(offset) + " is not a multiple of " +
                          std::to_string(speakup::kRingAlignmentBytes));
  }
  return {shm.data() + offset, shm.size_bytes() - offset};
}

std::uint64_t write_block(PyRing& ring, const py::object& block) {
  const py::array array = checked_block(block, "block", ring.view.channels(), false);
  const auto* base = static_cast<const unsigned char*>(array.data());
  const py::ssize_t channel_stride = array.strides(0);
  const auto frames = static_cast<std::uint64_t>(array.shape(1));
  py::gil_scoped_release release;
  return ring.view.write_with(
      [base, channel_stride](std::uint32_t c) {
        return reinterpret_cast<const float*>(base + c * channel_stride);
      },
      frames);
}

std::uint64_t read_into(PyRing& ring, const py::object& out) {
  py::array array = checked_block(out, "out", ring.view.channels(), true);
  auto* base = static_cast<unsigned char*>(array.mutable_data());
  const py::ssize_t channel_stride = array.strides(0);
  const auto frames = static_cast<std::uint64_t>(array.shape(1));
  py::gil_scoped_release release;
  return ring.view.read_with(
      [base, channel_stride](std::uint32_t c) {
        return reinterpret_cast<float*>(base + c * channel_stride);
      },
      frames);
}

py::array_t<float> read_block(PyRing& ring, std::int64_t max_frames) {
  const std::uint64_t frames =
      std::min(non_negative(max_frames, "max_frames"), ring.view.available());
  const std::uint32_t channels = ring.view.channels();
  py::array_t<float> out({static_cast<py::ssize_t>(channels), static_cast<py::ssize_t>(frames)});
  float* data = out.mutable_data();
  std::uint64_t copied = 0;
  {
    py::gil_scoped_release release;
    copied = ring.view.read_with([data, frames](std::uint32_t c) { return data + c * frames; },
                                 frames);
  }
  // Only this consumer removes frames, so all `frames` counted above are still there.
  if (copied != frames) {
    throw std::logic_error("ring lost frames between available() and read(): two consumers?");
  }
  return out;
}

using speakup::bridge::Segment;

std::uint32_t u32(std::int64_t value, const char* name) {
  if (value < 0 || value > UINT32_MAX) {
    throw py::value_error(std::string(name) + " = " + std::to_string(value) +
                          " is outside [0, 2^32)");
  }
  return static_cast<std::uint32_t>(value);
}

std::shared_ptr<Segment> create_segment(const std::string& name, std::int64_t channels,
                                        std::int64_t sample_rate_hz, std::int64_t block_frames,
                                        std::int64_t param_count, std::int64_t wet_latency_samples,
                                        std::int64_t ring_capacity_frames) {
  speakup::bridge::Geometry geometry;
  geometry.channels = u32(channels, "channels");
  geometry.sample_rate_hz = u32(sample_rate_hz, "sample_rate_hz");
  geometry.block_frames = u32(block_frames, "block_frames");
  geometry.param_count = u32(param_count, "param_count");
  geometry.wet_latency_samples = u32(wet_latency_samples, "wet_latency_samples");
  geometry.ring_capacity_frames = non_negative(ring_capacity_frames, "ring_capacity_frames");
  return std::make_shared<Segment>(Segment::create(name, geometry));
}

/// The waits release the GIL; timeouts are in seconds like the rest of Python.
std::uint64_t timeout_ns(double timeout_s) {
  if (!(timeout_s >= 0.0) || timeout_s > 3600.0) {
    throw py::value_error("timeout_s must be in [0, 3600], got " + std::to_string(timeout_s));
  }
  return static_cast<std::uint64_t>(timeout_s * 1e9);
}

void translate_system_error(std::exception_ptr pointer) {
  try {
    if (pointer) {
      std::rethrow_exception(pointer);
    }
  } catch (const std::system_error& error) {
    // OSError(errno, message) picks the subclass: FileNotFoundError, FileExistsError, ...
    py::object exception = py::reinterpret_borrow<py::object>(PyExc_OSError)(
        error.code().value(), error.what());
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exception.ptr())), exception.ptr());
  }
}

}  // namespace

PYBIND11_MODULE(_native, m) {
  m.doc() = "Native core of SpeakUp FX: lock-free SPSC float32 ring buffer and POSIX shared memory.";
  m.attr("RING_MAGIC") = speakup::kRingMagic;
  m.attr("RING_PROTOCOL_VERSION") = speakup::kRingProtocolVersion;
  m.attr("RING_ALIGNMENT_BYTES") = speakup::kRingAlignmentBytes;
  py::register_exception_translator(translate_system_error);

  py::class_<speakup::SharedMemory, std::shared_ptr<speakup::SharedMemory>>(
      m, "SharedMemory", py::buffer_protocol(),
      "A POSIX shared-memory segment (mode 0600) mapped read-write; exposes the buffer protocol.")
      .def_static(
          "create",
          [](const std::string& name, std::int64_t size_bytes) {
            const std::uint64_t size = positive(size_bytes, "size_bytes");
            return std::make_shared<speakup::SharedMemory>(speakup::SharedMemory::create(name, size));
          },
          py::arg("name"), py::arg("size_bytes"),
          "Create and map a new zero-filled segment; FileExistsError if the name is taken.")
      .def_static(
          "attach",
          [](const std::string& name) {
            return std::make_shared<speakup::SharedMemory>(speakup::SharedMemory::attach(name));
          },
          py::arg("name"), "Map an existing segment; FileNotFoundError if there is none.")
      .def_property_readonly(
          "name", [](const speakup::SharedMemory& shm) { return shm.posix_name().substr(1); },
          "The segment's name, without the leading '/'.")
      .def_property_readonly("size_bytes", &speakup::SharedMemory::size_bytes)
      .def_property_readonly("broken", &speakup::SharedMemory::broken,
                             "True once a peer truncated the segment (the mapping now reads zeros).")
      .def("unlink", py::overload_cast<>(&speakup::SharedMemory::unlink, py::const_),
           "Remove the segment's name; existing mappings stay valid.")
      .def_buffer([](speakup::SharedMemory& shm) {
        return py::buffer_info(shm.data(), 1, py::format_descriptor<std::uint8_t>::format(), 1,
                               {static_cast<py::ssize_t>(shm.size_bytes())}, {1}, false);
      })
      .def("__repr__", [](const speakup::SharedMemory& shm) {
        return "SharedMemory(name='" + shm.posix_name().substr(1) +
               "', size_bytes=" + std::to_string(shm.size_bytes()) + ")";
      });

  py::register_exception<speakup::bridge::BridgeError>(m, "BridgeError", PyExc_ValueError);
  m.attr("BRIDGE_MAGIC") = speakup::bridge::kMagic;
  m.attr("BRIDGE_PROTOCOL_VERSION") = speakup::bridge::kProtocolVersion;
  m.def("bridge_runtime_dir", &speakup::bridge::runtime_dir,
        "The user's directory for the model server's lock and log (what the plugin also uses).");
  m.def("bridge_segment_prefix", &speakup::bridge::segment_prefix,
        "'speakup-u<euid>-<runtime dir hash>-': the prefix of this user's (and runtime dir's) segments.");
  m.def("bridge_doorbell_name", &speakup::bridge::doorbell_name,
        "The server doorbell's name: '<bridge_segment_prefix()>doorbell'.");

  py::class_<Segment, std::shared_ptr<Segment>>(
      m, "BridgeSegment",
      "One plugin instance's shared-memory segment: header, parameter block, input and output "
      "rings, heartbeats and futex wake-up words (see native/include/speakup/bridge.hpp).")
      .def_static("create", &create_segment, py::arg("name"), py::arg("channels"),
                  py::arg("sample_rate_hz"), py::arg("block_frames"), py::arg("param_count"),
                  py::arg("wet_latency_samples"), py::arg("ring_capacity_frames"),
                  "Create a segment (the plugin's side); ValueError for a geometry out of range.")
      .def_static(
          "attach", [](const std::string& name) { return std::make_shared<Segment>(Segment::attach(name)); },
          py::arg("name"),
          "Attach to a segment (the server's side); ValueError if it is foreign, malformed, "
          "another user's or open to other users; FileNotFoundError if absent.")
      .def_property_readonly("name", [](const Segment& s) { return s.memory().posix_name().substr(1); })
      .def_property_readonly("channels", [](const Segment& s) { return s.geometry().channels; })
      .def_property_readonly("sample_rate_hz", [](const Segment& s) { return s.geometry().sample_rate_hz; })
      .def_property_readonly("block_frames", [](const Segment& s) { return s.geometry().block_frames; })
      .def_property_readonly("param_count", [](const Segment& s) { return s.geometry().param_count; })
      .def_property_readonly("wet_latency_samples", [](const Segment& s) { return s.geometry().wet_latency_samples; })
      .def_property_readonly("ring_capacity_frames",
                             [](const Segment& s) { return s.geometry().ring_capacity_frames; })
      .def_property_readonly("total_bytes", [](const Segment& s) { return s.layout().total_bytes; })
      .def_property_readonly("creator_pid", &Segment::creator_pid)
      .def_property_readonly("broken", &Segment::broken,
                             "True once a peer truncated the segment (the mapping now reads zeros).")
      .def_property_readonly(
          "input", [](std::shared_ptr<Segment> s) { return PyRing{s, s->input()}; },
          "The input ring (plugin writes, server reads).")
      .def_property_readonly(
          "output", [](std::shared_ptr<Segment> s) { return PyRing{s, s->output()}; },
          "The output ring (server writes, plugin reads).")
      .def(
          "params",
          [](const Segment& s) {
            py::array_t<float> out(static_cast<py::ssize_t>(s.geometry().param_count));
            for (std::uint32_t i = 0; i < s.geometry().param_count; ++i) out.mutable_at(i) = s.param(i);
            return out;
          },
          "A float32 copy of the parameter block.")
      .def(
          "set_param",
          [](Segment& s, std::int64_t index, float value) {
            if (index < 0 || index >= s.geometry().param_count) {
              throw py::index_error("parameter index " + std::to_string(index) + " is outside [0, " +
                                    std::to_string(s.geometry().param_count) + ")");
            }
            s.set_param(static_cast<std::uint32_t>(index), value);
          },
          py::arg("index"), py::arg("value"))
      .def_property_readonly("params_generation", &Segment::params_generation)
      .def("beat_client", &Segment::beat_client)
      .def("beat_server", &Segment::beat_server)
      .def_property_readonly("client_heartbeat", &Segment::client_heartbeat)
      .def_property_readonly("server_heartbeat", &Segment::server_heartbeat)
      .def_property("server_pid", &Segment::server_pid, &Segment::set_server_pid)
      .def("wake_server", &Segment::wake_server)
      .def("wake_client", &Segment::wake_client)
      .def_property_readonly("server_wake_count", &Segment::server_wake_count)
      .def_property_readonly("client_wake_count", &Segment::client_wake_count)
      .def(
          "wait_server",
          [](Segment& s, std::uint32_t seen, double timeout_s) {
            const std::uint64_t ns = timeout_ns(timeout_s);
            py::gil_scoped_release release;
            return s.wait_server(seen, ns);
          },
          py::arg("seen"), py::arg("timeout_s"),
          "Sleep while server_wake_count == seen, at most timeout_s; True if it changed.")
      .def(
          "wait_client",
          [](Segment& s, std::uint32_t seen, double timeout_s) {
            const std::uint64_t ns = timeout_ns(timeout_s);
            py::gil_scoped_release release;
            return s.wait_client(seen, ns);
          },
          py::arg("seen"), py::arg("timeout_s"),
          "Sleep while client_wake_count == seen, at most timeout_s; True if it changed.")
      .def("unlink", &Segment::unlink, "Remove the segment's name; mappings stay valid.")
      .def("__repr__", [](const Segment& s) {
        const auto& g = s.geometry();
        return "BridgeSegment(name='" + s.memory().posix_name().substr(1) +
               "', channels=" + std::to_string(g.channels) +
               ", sample_rate_hz=" + std::to_string(g.sample_rate_hz) +
               ", block_frames=" + std::to_string(g.block_frames) + ")";
      });

  using speakup::bridge::Doorbell;
  py::class_<Doorbell, std::shared_ptr<Doorbell>>(
      m, "BridgeDoorbell",
      "The model server's doorbell: one futex word every plugin instance rings after writing "
      "input, so the server sleeps on one word for all its slots (see bridge.hpp).")
      .def_static(
          "create", [](const std::string& name) { return std::make_shared<Doorbell>(Doorbell::create(name)); },
          py::arg("name"),
          "Create the doorbell holding this process's pid (the server's side); FileExistsError if the name is taken.")
      .def_static(
          "attach", [](const std::string& name) { return std::make_shared<Doorbell>(Doorbell::attach(name)); },
          py::arg("name"),
          "Attach to the doorbell (an instance's side); ValueError if it is foreign, malformed, "
          "another user's or open to other users; FileNotFoundError if absent.")
      .def_property_readonly("name", [](const Doorbell& d) { return d.memory().posix_name().substr(1); })
      .def_property_readonly("server_pid", &Doorbell::server_pid,
                             "The pid of the server that created it (read once, at create/attach).")
      .def_property_readonly("broken", &Doorbell::broken,
                             "True once a peer truncated it (ringing then reaches no one).")
      .def("still_named", &Doorbell::still_named,
           "True while its name still leads to this doorbell (not removed or replaced).")
      .def("ring", &Doorbell::ring, "Bump the word and wake the server; never blocks.")
      .def_property_readonly("count", &Doorbell::count)
      .def(
          "wait",
          [](Doorbell& d, std::uint32_t seen, double timeout_s) {
            const std::uint64_t ns = timeout_ns(timeout_s);
            py::gil_scoped_release release;
            return d.wait(seen, ns);
          },
          py::arg("seen"), py::arg("timeout_s"),
          "Sleep while count == seen, at most timeout_s; True if it changed.")
      .def("unlink", &Doorbell::unlink, "Remove the doorbell's name; mappings stay valid.")
      .def("__repr__", [](const Doorbell& d) {
        return "BridgeDoorbell(name='" + d.memory().posix_name().substr(1) +
               "', server_pid=" + std::to_string(d.server_pid()) + ")";
      });

  py::class_<PyRing>(m, "RingBuffer",
                     "Lock-free single-producer/single-consumer ring of float32 frames.\n\n"
                     "One thread writes, one thread reads; blocks are (channels, frames).")
      .def(py::init(&make_ring), py::arg("channels"), py::arg("capacity_frames"))
      .def_property_readonly("channels", [](const PyRing& ring) { return ring.view.channels(); })
      .def_property_readonly("capacity_frames",
                             [](const PyRing& ring) { return ring.view.capacity_frames(); })
      .def("write", &write_block, py::arg("block"),
           "Write min(frames, space()) frames of a float32 (channels, frames) block; "
           "return the frames written.")
      .def("read", &read_block, py::arg("max_frames"),
           "Read min(max_frames, available()) frames into a new float32 (channels, n) array.")
      .def("read_into", &read_into, py::arg("out"),
           "Read up to out.shape[1] frames into the float32 (channels, frames) array out; "
           "return the frames read.")
      .def("available", [](const PyRing& ring) { return ring.view.available(); },
           "Frames ready to read.")
      .def("space", [](const PyRing& ring) { return ring.view.space(); }, "Frames that fit.")
      .def_property_readonly("corrupt", [](const PyRing& ring) { return ring.view.corrupt(); },
                             "True while the counters claim more frames than the ring holds "
                             "(a peer wrote them); nothing moves meanwhile.")
      .def("clear", [](PyRing& ring) { ring.view.clear(); },
           "Discard every available frame (a consumer-side operation).")
      .def_static(
          "required_bytes",
          [](std::int64_t channels, std::int64_t capacity_frames) {
            return speakup::ring_required_bytes(positive(channels, "channels"),
                                                positive(capacity_frames, "capacity_frames"));
          },
          py::arg("channels"), py::arg("capacity_frames"),
          "Bytes a ring of this shape occupies in shared memory (a multiple of 64).")
      .def_static(
          "create_in",
          [](std::shared_ptr<speakup::SharedMemory> shm, std::int64_t offset_bytes,
             std::int64_t channels, std::int64_t capacity_frames) {
            const auto [region, region_bytes] = region_at(*shm, offset_bytes);
            speakup::RingView view = speakup::RingView::create_in(
                region, region_bytes, positive(channels, "channels"),
                positive(capacity_frames, "capacity_frames"));
            return PyRing{std::move(shm), view};
          },
          py::arg("shm"), py::arg("offset_bytes"), py::arg("channels"), py::arg("capacity_frames"),
          "Create an empty ring in shm at offset_bytes (a multiple of 64).")
      .def_static(
          "attach_in",
          [](std::shared_ptr<speakup::SharedMemory> shm, std::int64_t offset_bytes) {
            const auto [region, region_bytes] = region_at(*shm, offset_bytes);
            speakup::RingView view = speakup::RingView::attach_in(region, region_bytes);
            return PyRing{std::move(shm), view};
          },
          py::arg("shm"), py::arg("offset_bytes"),
          "Attach to the ring another party created in shm at offset_bytes; "
          "ValueError if the header is not a valid ring.")
      .def("__repr__", [](const PyRing& ring) {
        return "RingBuffer(channels=" + std::to_string(ring.view.channels()) +
               ", capacity_frames=" + std::to_string(ring.view.capacity_frames()) + ")";
      });
}
