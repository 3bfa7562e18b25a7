#pragma once
// The largest single request to the global operator new while a largest_allocation probe is alive, so a test can
// check that a reader allocates no more than its input holds. Include it in one translation unit of a test program
// only: it replaces the program's global operator new and delete (by malloc and free, which the sanitizers see).

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

namespace bipq_test {

inline std::atomic<bool> tracking_allocations{false};
inline std::atomic<std::size_t> largest_request{0};

/// Records the largest operator new request made between its construction and bytes().
class largest_allocation {
 public:
  largest_allocation() {
    largest_request = 0;
    tracking_allocations = true;
  }
  largest_allocation(const largest_allocation&) = delete;
  largest_allocation& operator=(const largest_allocation&) = delete;
  ~largest_allocation() { tracking_allocations = false; }
  std::size_t bytes() const { return largest_request.load(); }
};

inline void* counted_new(std::size_t n) {
  if (tracking_allocations.load(std::memory_order_relaxed)) {
    std::size_t seen = largest_request.load(std::memory_order_relaxed);
    while (n > seen && !largest_request.compare_exchange_weak(seen, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

}  // namespace bipq_test

void* operator new(std::size_t n) { return bipq_test::counted_new(n); }
void* operator new[](std::size_t n) { return bipq_test::counted_new(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
