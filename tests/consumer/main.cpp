// Built against the installed bipq package: include the umbrella header and measure a tensor.
#include <bipq/bipq.hpp>

#include <cstdio>
#include <vector>

int main() {
  std::vector<float> w{0.0f, 3.0f, -1.0f, 0.5f};
  auto s = bipq::as_span(w);
  std::printf("bipq consumer: %zu weights\n", s.size());
  return s.size() == 4 ? 0 : 1;
}
