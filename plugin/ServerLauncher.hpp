// Finds and starts the per-user model server (`speakup serve`). Not real-time: called
// only from an instance's worker thread.
//
// The interpreter is the one `speakup install-plugin` recorded in the bundle
// (Contents/Resources/speakup-python). A running server holds an exclusive flock on
// <runtime_dir>/server.lock for its whole life, so "is one running?" is a lock probe
// (a dead server's lock goes with its process). Two instances that probe at once may
// both start one; the loser finds the lock taken and exits at once.
#pragma once

#include <dlfcn.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "speakup/bridge.hpp"

extern char** environ;

namespace speakup::plugin {

/// The bundle's recorded interpreter, or "" when the bundle was not installed by `speakup install-plugin`.
inline std::string recorded_interpreter() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&recorded_interpreter), &info) == 0 || info.dli_fname == nullptr) {
    return "";
  }
  // <bundle>/Contents/<arch>-linux/<name>.so -> <bundle>/Contents/Resources/speakup-python
  std::string path(info.dli_fname);
  for (int i = 0; i < 2; ++i) path = path.substr(0, path.find_last_of('/'));
  std::ifstream file(path + "/Resources/speakup-python");
  std::string interpreter;
  std::getline(file, interpreter);
  return interpreter;
}

/// True while some process holds the server lock.
inline bool server_running() {
  const std::string directory = bridge::runtime_dir();
  const int fd = ::open((directory + "/server.lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;  // no lock file: no server ever ran here
  const bool locked = ::flock(fd, LOCK_EX | LOCK_NB) != 0;
  ::close(fd);
  return locked;
}

/// Starts `interpreter -m speakup_fx.cli serve` detached (its own session, reparented to
/// init through a shell that exits at once, so the host never gets a zombie). False if it
/// could not be spawned.
inline bool start_server(const std::string& interpreter) {
  if (interpreter.empty()) return false;
  const std::string directory = bridge::runtime_dir();
  ::mkdir(directory.c_str(), 0700);
  const std::string log = directory + "/server.log";
  const char* script = "setsid \"$0\" -m speakup_fx.cli serve </dev/null >>\"$1\" 2>&1 &";
  char* const argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>(script),
                        const_cast<char*>(interpreter.c_str()), const_cast<char*>(log.c_str()), nullptr};
  pid_t shell = 0;
  if (::posix_spawn(&shell, "/bin/sh", nullptr, nullptr, argv, environ) != 0) return false;
  int status = 0;
  ::waitpid(shell, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace speakup::plugin
