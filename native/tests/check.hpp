// A minimal test harness: CHECK records a failure and carries on; main returns
// the failure count so ctest reports the executable as failed.
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace check {

inline int& failures() {
  static int count = 0;
  return count;
}

inline std::vector<std::pair<std::string, std::function<void()>>>& registry() {
  static std::vector<std::pair<std::string, std::function<void()>>> tests;
  return tests;
}

struct Register {
  Register(const char* name, std::function<void()> body) { registry().emplace_back(name, std::move(body)); }
};

inline int run_all() {
  for (const auto& [name, body] : registry()) {
    const int before = failures();
    try {
      body();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "  unexpected exception: %s\n", error.what());
      ++failures();
    }
    std::printf("%s %s\n", failures() == before ? "PASS" : "FAIL", name.c_str());
  }
  std::printf("%zu tests, %d failed checks\n", registry().size(), failures());
  return failures() == 0 ? 0 : 1;
}

}  // namespace check

#define CHECK_CONCAT_INNER(a, b) a##b
#define CHECK_CONCAT(a, b) CHECK_CONCAT_INNER(a, b)

#define TEST_CASE(name)                                                              \
  static void name();                                                                \
  static const check::Register CHECK_CONCAT(register_, name)(#name, &name);          \
  static void name()

#define CHECK(condition)                                                             \
  do {                                                                               \
    if (!(condition)) {                                                              \
      std::fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #condition); \
      ++check::failures();                                                           \
    }                                                                                \
  } while (false)

#define CHECK_THROWS(statement, exception_type)                                      \
  do {                                                                               \
    bool thrown = false;                                                             \
    try {                                                                            \
      statement;                                                                     \
    } catch (const exception_type&) {                                                \
      thrown = true;                                                                 \
    }                                                                                \
    if (!thrown) {                                                                   \
      std::fprintf(stderr, "  %s:%d: %s did not throw %s\n", __FILE__, __LINE__, #statement, \
                   #exception_type);                                                 \
      ++check::failures();                                                           \
    }                                                                                \
  } while (false)
