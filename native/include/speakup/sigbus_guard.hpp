// Survives a peer that truncates a shared-memory segment we have mapped.
//
// Touching a page of a MAP_SHARED mapping beyond the end of its (shrunk) file
// raises SIGBUS, whatever we checked before: fstat-then-touch is a race, and
// MAP_POPULATE only pre-faults pages the truncation then takes away. Shared
// memory cannot be sealed against shrinking either (only memfd can, and a
// memfd has no name a second process could open without a socket).
//
// So, as libwayland-server does for client shm pools: a SIGBUS handler looks
// up the faulting address in a table of guarded mappings; if it lies in one,
// it maps anonymous zero pages over that whole mapping (MAP_FIXED keeps the
// addresses valid), marks the mapping broken and returns, so the faulting
// access re-runs and reads zeros. The owner notices `broken()` and detaches.
// Faults elsewhere go to the previously installed handler (or the default
// action), so a host's own crash handler keeps working.
//
// The table is a fixed array of atomics (the handler may run at any time on
// any thread; it must not lock or allocate). A shared library that installs
// the handler must never be unloaded while the process lives (link the plugin
// with -z nodelete), since the kernel would then jump into unmapped code.
#pragma once

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

namespace speakup::sigbus {

inline constexpr std::size_t kMaxGuardedMappings = 1024;

struct GuardedMapping {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<bool> broken{false};
};

namespace detail {

inline GuardedMapping* table() {
  static GuardedMapping mappings[kMaxGuardedMappings];
  return mappings;
}

inline struct sigaction& previous_action() {
  static struct sigaction action {};
  return action;
}

inline void forward(int signal_number, siginfo_t* info, void* context) {
  const struct sigaction& previous = previous_action();
  if (previous.sa_flags & SA_SIGINFO) {
    if (previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signal_number, info, context);
      return;
    }
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN &&
             previous.sa_handler != nullptr) {
    previous.sa_handler(signal_number);
    return;
  }
  // Default action: restore it and return; the access faults again and the process dies
  // exactly as it would have without us.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  ::sigaction(SIGBUS, &default_action, nullptr);
}

inline void handle(int signal_number, siginfo_t* info, void* context) {
  const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
  GuardedMapping* mappings = table();
  for (std::size_t i = 0; i < kMaxGuardedMappings; ++i) {
    const std::uintptr_t begin = mappings[i].begin.load(std::memory_order_acquire);
    const std::uintptr_t end = mappings[i].end.load(std::memory_order_acquire);
    if (begin != 0 && begin <= address && address < end) {
      void* replaced = ::mmap(reinterpret_cast<void*>(begin), end - begin, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
      if (replaced != MAP_FAILED) {
        mappings[i].broken.store(true, std::memory_order_release);
        return;  // the access re-runs on zero pages
      }
      break;
    }
  }
  forward(signal_number, info, context);
}

inline void install_once() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_sigaction = &handle;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (::sigaction(SIGBUS, &action, &previous_action()) != 0) {
      throw std::runtime_error("cannot install the SIGBUS handler that guards shared memory");
    }
  });
}

}  // namespace detail

/// Guards [data, data + size_bytes) until release(); returns the table entry.
/// Throws std::runtime_error when kMaxGuardedMappings mappings are guarded already.
inline GuardedMapping* guard(void* data, std::size_t size_bytes) {
  detail::install_once();
  const auto begin = reinterpret_cast<std::uintptr_t>(data);
  GuardedMapping* mappings = detail::table();
  for (std::size_t i = 0; i < kMaxGuardedMappings; ++i) {
    std::uintptr_t expected = 0;
    // Claim the slot through `end` first so a half-written entry never matches an address.
    if (mappings[i].end.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) {
      mappings[i].broken.store(false, std::memory_order_relaxed);
      mappings[i].begin.store(begin, std::memory_order_release);
      mappings[i].end.store(begin + size_bytes, std::memory_order_release);
      return &mappings[i];
    }
  }
  throw std::runtime_error("too many shared-memory mappings guarded at once (limit " +
                           std::to_string(kMaxGuardedMappings) + ")");
}

/// Stops guarding a mapping (call before munmap).
inline void release(GuardedMapping* mapping) noexcept {
  if (mapping == nullptr) return;
  mapping->begin.store(0, std::memory_order_release);
  mapping->broken.store(false, std::memory_order_relaxed);
  mapping->end.store(0, std::memory_order_release);
}

}  // namespace speakup::sigbus
