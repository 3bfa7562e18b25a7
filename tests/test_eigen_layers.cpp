// Every layer's backward pass against central finite differences of f(x, θ) = Σ u ⊙ layer(x; θ), in double, for
// the input and every parameter; and forward passes against their definitions on small cases.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

#include "bipq/adapters/eigen/layers.hpp"

using namespace bipq::eigen;

namespace {

using layer_d = layer<double>;

void fill_random(std::vector<double>& v, std::uint64_t seed, double scale = 1.0) {
  bipq::detail::rng g(seed);
  for (double& x : v) x = scale * (2.0 * g.uniform() - 1.0);
}

double weighted_output(layer_d& l, const thread_context& ctx, const activation<double>& x, const activation<double>& u) {
  activation<double> y;
  l.forward(ctx, x, y);
  REQUIRE(y.data.size() == u.data.size());
  double f = 0.0;
  for (std::size_t j = 0; j < y.data.size(); ++j) f += u.data[j] * y.data[j];
  return f;
}

// Checks ∂f/∂x and ∂f/∂θ from backward against (f(v + h) − f(v − h)) / 2h for every entry.
void check_gradients(layer_d& l, shape3 in, std::size_t n, bool training = true, std::uint64_t seed = 1) {
  l.set_threads(1);
  const thread_context ctx{0, training, nullptr};
  activation<double> x, y, u, dx;
  x.resize(in, n);
  fill_random(x.data, seed);
  l.forward(ctx, x, y);
  u.resize(y.sample_shape(), n);
  fill_random(u.data, seed + 1);
  l.backward(ctx, x, y, u, &dx);
  l.reduce_gradients(1);
  REQUIRE(dx.data.size() == x.data.size());

  const double h = 1e-6;
  auto central = [&](double& v) {
    const double saved = v;
    v = saved + h;
    const double fp = weighted_output(l, ctx, x, u);
    v = saved - h;
    const double fm = weighted_output(l, ctx, x, u);
    v = saved;
    return (fp - fm) / (2 * h);
  };
  for (std::size_t j = 0; j < x.data.size(); ++j) {
    INFO("input entry " << j);
    CHECK(dx.data[j] == doctest::Approx(central(x.data[j])).epsilon(1e-6).scale(1.0));
  }
  for (auto& p : l.parameters())
    for (std::size_t j = 0; j < p.value.size(); ++j) {
      INFO("parameter " << p.suffix << " entry " << j);
      CHECK(p.grad[j] == doctest::Approx(central(p.value[j])).epsilon(1e-6).scale(1.0));
    }
}

void randomize_parameters(layer_d& l, std::uint64_t seed) {
  for (auto& p : l.parameters()) fill_random(p.value, seed++, 0.5);
}

}  // namespace

TEST_CASE("conv2d backward matches finite differences (im2col + GEMM path)") {
  SUBCASE("3x3, stride 1, padding 1") {
    conv2d<double> c(4, 3, 3, 1, 1);
    CHECK_FALSE(c.direct());
    randomize_parameters(c, 10);
    check_gradients(c, {4, 5, 6}, 3);
  }
  SUBCASE("3x3, stride 2, padding 1, no bias") {
    conv2d<double> c(4, 2, 3, 2, 1, false);
    CHECK(c.parameters().size() == 1);
    randomize_parameters(c, 11);
    check_gradients(c, {4, 7, 6}, 2);
  }
  SUBCASE("3x3, stride 1, no padding, rows of one vector (dx gathered from zero-padded rows)") {
    conv2d<double> c(4, 3, 3);
    randomize_parameters(c, 15);
    check_gradients(c, {4, 7, 6}, 3);
  }
  SUBCASE("5x5, stride 1, no padding (LeNet's conv2)") {
    conv2d<double> c(6, 4, 5);
    randomize_parameters(c, 12);
    check_gradients(c, {6, 9, 9}, 2);
  }
}

TEST_CASE("conv2d backward matches finite differences (direct path)") {
  SUBCASE("1 -> 6, 5x5, padding 2 (LeNet's conv1), rows wider than one vector") {
    conv2d<double> c(1, 6, 5, 1, 2);
    CHECK(c.direct());
    randomize_parameters(c, 13);
    check_gradients(c, {1, 7, 19}, 3);
  }
  SUBCASE("3 -> 5 channels, 3x3, padding 1, no bias") {
    conv2d<double> c(3, 5, 3, 1, 1, false);
    CHECK(c.direct());
    randomize_parameters(c, 14);
    check_gradients(c, {3, 6, 5}, 2);
  }
}

TEST_CASE("conv2d direct and GEMM paths agree with the definition of cross-correlation") {
  // Same weights through a direct layer (C·R·S ≤ 32) and through the definition computed by hand.
  conv2d<double> c(1, 3, 3, 1, 1);
  randomize_parameters(c, 20);
  c.set_threads(1);
  activation<double> x, y;
  x.resize({1, 5, 4}, 2);
  fill_random(x.data, 21);
  c.forward({0, false, nullptr}, x, y);
  const auto& w = c.parameters()[0].value;
  const auto& b = c.parameters()[1].value;
  for (std::size_t k = 0; k < 3; ++k)
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t oh = 0; oh < 5; ++oh)
        for (std::size_t ow = 0; ow < 4; ++ow) {
          double ref = b[k];
          for (std::size_t r = 0; r < 3; ++r)
            for (std::size_t s = 0; s < 3; ++s) {
              const long ih = long(oh + r) - 1, iw = long(ow + s) - 1;
              if (ih >= 0 && ih < 5 && iw >= 0 && iw < 4) ref += w[k * 9 + r * 3 + s] * x.channel(0)[i * 20 + ih * 4 + iw];
            }
          CHECK(y.channel(k)[i * 20 + oh * 4 + ow] == doctest::Approx(ref).epsilon(1e-12));
        }
  // The GEMM path on 2 input channels against the same definition.
  conv2d<double> g(2, 2, 3, 2, 0);
  randomize_parameters(g, 22);
  g.set_threads(1);
  activation<double> x2, y2;
  x2.resize({2, 7, 7}, 1);
  fill_random(x2.data, 23);
  g.forward({0, false, nullptr}, x2, y2);
  REQUIRE(y2.h == 3);
  REQUIRE(y2.w == 3);
  const auto& w2 = g.parameters()[0].value;
  for (std::size_t k = 0; k < 2; ++k)
    for (std::size_t oh = 0; oh < 3; ++oh)
      for (std::size_t ow = 0; ow < 3; ++ow) {
        double ref = g.parameters()[1].value[k];
        for (std::size_t c2 = 0; c2 < 2; ++c2)
          for (std::size_t r = 0; r < 3; ++r)
            for (std::size_t s = 0; s < 3; ++s)
              ref += w2[((k * 2 + c2) * 3 + r) * 3 + s] * x2.channel(c2)[(2 * oh + r) * 7 + 2 * ow + s];
        CHECK(y2.channel(k)[oh * 3 + ow] == doctest::Approx(ref).epsilon(1e-12));
      }
}

namespace {

// y = conv(x) through the GEMM (or direct) kernel against the definition, for rows of every width class of
// im2col's copies and of the direct kernel's whole-vector stores.
template <typename T>
void check_against_definition(std::size_t width, std::size_t pad, std::size_t stride, std::size_t kernel,
                              conv_algorithm algorithm = conv_algorithm::gemm) {
  const std::size_t C = 3, K = 4, H = 5, n = 3;
  conv2d<T> conv(C, K, kernel, stride, pad);
  conv.set_algorithm(algorithm);
  conv.set_threads(1);
  bipq::detail::rng g(width * 31 + pad * 7 + stride * 3 + kernel);
  for (auto& p : conv.parameters())
    for (T& v : p.value) v = T(2.0 * g.uniform() - 1.0);
  activation<T> x, y;
  x.resize({C, H, width}, n);
  for (T& v : x.data) v = T(2.0 * g.uniform() - 1.0);
  conv.forward({0, false, nullptr}, x, y);
  REQUIRE(y.h == (H + 2 * pad - kernel) / stride + 1);
  REQUIRE(y.w == (width + 2 * pad - kernel) / stride + 1);
  const auto& w = conv.parameters()[0].value;
  const auto& b = conv.parameters()[1].value;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
  for (std::size_t k = 0; k < K; ++k)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t oh = 0; oh < y.h; ++oh)
        for (std::size_t ow = 0; ow < y.w; ++ow) {
          double ref = b[k], mag = std::abs(double(b[k]));
          for (std::size_t c = 0; c < C; ++c)
            for (std::size_t r = 0; r < kernel; ++r)
              for (std::size_t s = 0; s < kernel; ++s) {
                const long ih = long(oh * stride + r) - long(pad), iw = long(ow * stride + s) - long(pad);
                if (ih < 0 || ih >= long(H) || iw < 0 || iw >= long(width)) continue;
                const double t = double(w[((k * C + c) * kernel + r) * kernel + s]) *
                                 double(x.channel(c)[(i * H + std::size_t(ih)) * width + std::size_t(iw)]);
                ref += t, mag += std::abs(t);
              }
          INFO("width " << width << " pad " << pad << " stride " << stride << " k " << k << " i " << i << " oh " << oh
                        << " ow " << ow);
          CHECK(std::abs(double(y.channel(k)[(i * y.h + oh) * y.w + ow]) - ref) <= tol * mag);
        }
}

}  // namespace

TEST_CASE("conv2d GEMM and direct kernels equal the definition for every row width, padding and stride") {
  // Output widths from 1 to 40 cover im2col's row copies in one 16-, 32- or 64-byte vector and in several, and the
  // direct kernel's rows of one vector, of several, and of a partial last vector.
  for (std::size_t width : {3u, 4u, 6u, 7u, 9u, 12u, 14u, 17u, 28u, 40u})
    for (std::size_t pad : {0u, 1u, 2u}) {
      check_against_definition<float>(width, pad, 1, 3);
      check_against_definition<double>(width, pad, 1, 3);
      check_against_definition<float>(width, pad, 2, 3);
      check_against_definition<float>(width, pad, 1, 3, conv_algorithm::direct);
      check_against_definition<double>(width, pad, 1, 3, conv_algorithm::direct);
    }
  check_against_definition<float>(9, 0, 1, 1);
  check_against_definition<double>(33, 2, 1, 5);
}

TEST_CASE("linear backward matches finite differences") {
  linear<double> l(7, 4);
  randomize_parameters(l, 30);
  check_gradients(l, {7, 1, 1}, 5);
  CHECK_THROWS_AS(l.output_shape({7, 2, 1}), std::invalid_argument);
  CHECK_THROWS_AS(l.output_shape({6, 1, 1}), std::invalid_argument);
}

TEST_CASE("relu, max_pool2d, flatten and global_avg_pool backward match finite differences") {
  SUBCASE("relu") {
    relu<double> r;
    check_gradients(r, {3, 4, 5}, 2);
  }
  SUBCASE("max_pool2d 2x2 (fast path)") {
    max_pool2d<double> p(2);
    check_gradients(p, {2, 6, 8}, 3);
  }
  SUBCASE("max_pool2d 3x3 stride 2 (overlapping windows, odd size)") {
    max_pool2d<double> p(3, 2);
    CHECK(p.output_shape({2, 7, 9}) == shape3{2, 3, 4});
    check_gradients(p, {2, 7, 9}, 2);
  }
  SUBCASE("max_pool2d after a forward pass in inference mode (no recorded maxima)") {
    max_pool2d<double> p(2), q(3, 2);
    check_gradients(p, {2, 6, 8}, 3, false);
    check_gradients(q, {2, 7, 9}, 2, false);
  }
  SUBCASE("max_pool2d gives the same maxima in inference and training mode, ties and NaN included") {
    for (std::size_t kernel : {2u, 3u}) {
      max_pool2d<double> p(kernel, 2);
      p.set_threads(1);
      activation<double> x, yt, yi;
      x.resize({2, 7, 8}, 3);
      bipq::detail::rng g(kernel);
      for (double& v : x.data) v = std::floor(3.0 * g.uniform());  // many ties
      for (std::size_t j = 0; j < x.data.size(); j += 5) x.data[j] = std::nan("");
      p.forward({0, true, nullptr}, x, yt);
      p.forward({0, false, nullptr}, x, yi);
      REQUIRE(yt.data.size() == yi.data.size());
      CHECK(std::memcmp(yt.data.data(), yi.data.data(), yt.data.size() * sizeof(double)) == 0);
    }
  }
  SUBCASE("flatten") {
    flatten<double> f;
    check_gradients(f, {3, 2, 5}, 4);
  }
  SUBCASE("global_avg_pool") {
    global_avg_pool<double> g;
    check_gradients(g, {4, 3, 3}, 3);
  }
}

TEST_CASE("flatten orders features as c*H*W + h*W + w (PyTorch's flatten of NCHW)") {
  flatten<double> f;
  activation<double> x, y;
  x.resize({2, 2, 3}, 2);
  for (std::size_t j = 0; j < x.data.size(); ++j) x.data[j] = double(j);
  f.forward({}, x, y);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t p = 0; p < 6; ++p) CHECK(y.data[(c * 6 + p) * 2 + i] == x.channel(c)[i * 6 + p]);
}

TEST_CASE("batch_norm2d backward matches finite differences in training and inference mode") {
  batch_norm2d<double> bn(3);
  randomize_parameters(bn, 40);
  SUBCASE("training: batch statistics") { check_gradients(bn, {3, 2, 3}, 4, true); }
  SUBCASE("inference: running statistics") { check_gradients(bn, {3, 2, 3}, 4, false); }
}

TEST_CASE("batch_norm2d normalises with batch statistics and updates running statistics as PyTorch") {
  batch_norm2d<double> bn(2, 0.1);
  bn.set_threads(1);
  activation<double> x, y;
  x.resize({2, 1, 3}, 2);
  x.data = {1, 2, 3, 4, 5, 6, /* channel 1 */ -1, 0, 1, 1, 0, -1};
  bn.forward({0, true, nullptr}, x, y);
  // Channel 0: mean 3.5, biased variance 35/12; output has mean 0 and (biased) variance 1 (up to eps).
  double m = 0, v = 0;
  for (std::size_t j = 0; j < 6; ++j) m += y.data[j] / 6;
  for (std::size_t j = 0; j < 6; ++j) v += (y.data[j] - m) * (y.data[j] - m) / 6;
  CHECK(m == doctest::Approx(0.0).scale(1.0));
  CHECK(v == doctest::Approx(35.0 / 12 / (35.0 / 12 + 1e-5)));
  CHECK(bn.running_mean()[0] == doctest::Approx(0.1 * 3.5));
  CHECK(bn.running_var()[0] == doctest::Approx(0.9 + 0.1 * 3.5));  // unbiased variance 17.5/5 = 3.5
}

TEST_CASE("batch_norm2d over two threads equals one thread on the whole batch") {
  batch_norm2d<double> one(2), two(2);
  randomize_parameters(one, 50);
  randomize_parameters(two, 50);
  one.set_threads(1);
  two.set_threads(2);
  activation<double> x, y, u, dx;
  x.resize({2, 3, 2}, 6);
  fill_random(x.data, 51);
  u.resize({2, 3, 2}, 6);
  fill_random(u.data, 52);
  one.forward({0, true, nullptr}, x, y);
  one.backward({0, true, nullptr}, x, y, u, &dx);
  one.reduce_gradients(1);

  // Split the batch into samples 0..2 and 3..5 and run both halves concurrently.
  auto half = [&](const activation<double>& a, std::size_t i0) {
    activation<double> h;
    h.resize(a.sample_shape(), 3);
    for (std::size_t c = 0; c < a.c; ++c)
      std::copy_n(a.channel(c) + i0 * a.plane(), 3 * a.plane(), h.channel(c));
    return h;
  };
  team group(2);
  activation<double> xs[2] = {half(x, 0), half(x, 3)}, us[2] = {half(u, 0), half(u, 3)}, ys[2], dxs[2];
  auto run = [&](std::size_t t) {
    const thread_context ctx{t, true, &group};
    two.forward(ctx, xs[t], ys[t]);
    two.backward(ctx, xs[t], ys[t], us[t], &dxs[t]);
  };
  std::thread worker(run, 1);
  run(0);
  worker.join();
  two.reduce_gradients(2);
  for (std::size_t t = 0; t < 2; ++t) {
    const activation<double> yh = half(y, 3 * t), dxh = half(dx, 3 * t);
    for (std::size_t j = 0; j < yh.data.size(); ++j) {
      CHECK(ys[t].data[j] == doctest::Approx(yh.data[j]).epsilon(1e-12));
      CHECK(dxs[t].data[j] == doctest::Approx(dxh.data[j]).epsilon(1e-10).scale(1.0));
    }
  }
  for (std::size_t p = 0; p < 2; ++p)
    for (std::size_t j = 0; j < 2; ++j)
      CHECK(two.parameters()[p].grad[j] == doctest::Approx(one.parameters()[p].grad[j]).epsilon(1e-12));
}

TEST_CASE("layers reject inputs they cannot take") {
  CHECK_THROWS_AS(conv2d<double>(0, 1, 3), std::invalid_argument);
  CHECK_THROWS_AS(conv2d<double>(1, 2, 5).output_shape({2, 8, 8}), std::invalid_argument);
  CHECK_THROWS_AS(conv2d<double>(1, 2, 5).output_shape({1, 4, 8}), std::invalid_argument);
  CHECK_THROWS_AS(max_pool2d<double>(3).output_shape({1, 2, 8}), std::invalid_argument);
  CHECK_THROWS_AS(batch_norm2d<double>(3).output_shape({2, 4, 4}), std::invalid_argument);
  CHECK_THROWS_AS(linear<double>(0, 3), std::invalid_argument);
}

TEST_CASE("conv2d in float agrees with double on LeNet's conv2 (float gathers dx, double scatters it)") {
  conv2d<float> cf(6, 16, 5);
  conv2d<double> cd(6, 16, 5);
  randomize_parameters(cd, 60);
  for (std::size_t p = 0; p < 2; ++p)
    for (std::size_t j = 0; j < cd.parameters()[p].value.size(); ++j)
      cf.parameters()[p].value[j] = static_cast<float>(cd.parameters()[p].value[j]);
  cf.set_threads(1);
  cd.set_threads(1);
  activation<double> xd, yd, ud, dxd;
  activation<float> xf, yf, uf, dxf;
  xd.resize({6, 14, 14}, 9);  // 9 images: chunks of 4, 4 and 1
  fill_random(xd.data, 61);
  xf.resize({6, 14, 14}, 9);
  std::copy(xd.data.begin(), xd.data.end(), xf.data.begin());
  const thread_context ctx{0, true, nullptr};
  cd.forward(ctx, xd, yd);
  cf.forward(ctx, xf, yf);
  ud.resize(yd.sample_shape(), 9);
  fill_random(ud.data, 62);
  uf.resize(yd.sample_shape(), 9);
  std::copy(ud.data.begin(), ud.data.end(), uf.data.begin());
  cd.backward(ctx, xd, yd, ud, &dxd);
  cf.backward(ctx, xf, yf, uf, &dxf);
  cd.reduce_gradients(1);
  cf.reduce_gradients(1);
  REQUIRE(dxf.data.size() == dxd.data.size());
  for (std::size_t j = 0; j < yd.data.size(); ++j) CHECK(yf.data[j] == doctest::Approx(yd.data[j]).epsilon(1e-4).scale(1.0));
  for (std::size_t j = 0; j < dxd.data.size(); ++j) CHECK(dxf.data[j] == doctest::Approx(dxd.data[j]).epsilon(1e-4).scale(1.0));
  for (std::size_t j = 0; j < cd.parameters()[0].grad.size(); ++j)
    CHECK(cf.parameters()[0].grad[j] == doctest::Approx(cd.parameters()[0].grad[j]).epsilon(1e-4).scale(1.0));
}

TEST_CASE("conv2d: forcing the direct or the GEMM kernel gives the same outputs and gradients") {
  for (const auto& [c, k, size, pad] : {std::array<std::size_t, 4>{1, 6, 11, 2}, std::array<std::size_t, 4>{6, 4, 9, 0}}) {
    conv2d<double> a(c, k, 5, 1, pad), b(c, k, 5, 1, pad);
    randomize_parameters(a, 70);
    randomize_parameters(b, 70);
    a.set_algorithm(conv_algorithm::direct);
    b.set_algorithm(conv_algorithm::gemm);
    CHECK(a.direct());
    CHECK_FALSE(b.direct());
    a.set_threads(1);
    b.set_threads(1);
    activation<double> x, ya, yb, u, dxa, dxb;
    x.resize({c, size, size}, 3);
    fill_random(x.data, 71);
    const thread_context ctx{0, true, nullptr};
    a.forward(ctx, x, ya);
    b.forward(ctx, x, yb);
    u.resize(ya.sample_shape(), 3);
    fill_random(u.data, 72);
    a.backward(ctx, x, ya, u, &dxa);
    b.backward(ctx, x, yb, u, &dxb);
    a.reduce_gradients(1);
    b.reduce_gradients(1);
    for (std::size_t j = 0; j < ya.data.size(); ++j) CHECK(ya.data[j] == doctest::Approx(yb.data[j]).epsilon(1e-12));
    for (std::size_t j = 0; j < dxa.data.size(); ++j) CHECK(dxa.data[j] == doctest::Approx(dxb.data[j]).epsilon(1e-12));
    for (std::size_t p = 0; p < 2; ++p)
      for (std::size_t j = 0; j < a.parameters()[p].grad.size(); ++j)
        CHECK(a.parameters()[p].grad[j] == doctest::Approx(b.parameters()[p].grad[j]).epsilon(1e-12));
  }
  conv2d<double> strided(1, 2, 3, 2);
  CHECK_THROWS_AS(strided.set_algorithm(conv_algorithm::direct), std::invalid_argument);
}
