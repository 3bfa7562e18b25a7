#pragma once
// Checkpoints: the state of a run at an epoch, round or solver-iteration boundary in one file, written atomically,
// so that a run killed at any moment resumes from its last boundary and ends bit-identical to a run never
// interrupted. The drivers (prune/*.hpp), train() and the bi-level solver take a `checkpoint` as the argument after
// their params; each layer of a run (driver, trainer, solver) adds its named fields while it runs.
//
// File format, version 1 (little-endian):
//   bytes 0–7    "BIPQCKPT"
//         8–11   u32 format version (1)
//         12–15  u32 reserved (0, checked)
//         16–23  u64 payload size in bytes
//         24–31  u64 FNV-1a (64-bit) hash of the payload
//         32–    payload: fields in name order, each  u32 name length, name, u8 type, u64 element count, elements
//                types: 1 = u64, 2 = f64, 3 = f32, 4 = text (bytes)
// Every run stores "run.method", "run.settings" (every field of its params, one "name=value" line each),
// "run.model" (parameter names and shapes) and "run.values" (every parameter's values). read_checkpoint() checks the
// magic string, version, size, checksum and every field's bounds before it allocates, so arbitrary bytes give an
// exception (io::checkpoint_error), never undefined behaviour; a checkpoint of another method, other settings or
// another model is refused with a message that says which field differs.

#include <algorithm>
#include <array>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "bipq/concepts.hpp"
#include "bipq/detail/field_count.hpp"
#include "bipq/detail/random.hpp"
#include "bipq/io/npy.hpp"

namespace bipq {
namespace io {

/// A checkpoint that cannot be read or does not belong to the run: truncated, corrupt, another version, method,
/// settings or model, or a missing field.
class checkpoint_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class checkpoint_field_type : std::uint8_t { u64 = 1, f64 = 2, f32 = 3, text = 4 };

/// The fields of a checkpoint by name: typed arrays of u64, f64, f32, or text.
class checkpoint_data {
 public:
  static constexpr std::uint32_t version = 1;
  static constexpr std::size_t header_size = 32;

  template <class V>
    requires std::same_as<V, std::uint64_t> || std::same_as<V, double> || std::same_as<V, float>
  void put(std::string_view name, std::span<const V> values) {
    field& f = fields_[std::string(name)];
    f.type = type_of<V>();
    f.count = values.size();
    f.bytes.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(V));
  }
  void put_text(std::string_view name, std::string_view text) {
    field& f = fields_[std::string(name)];
    f.type = checkpoint_field_type::text;
    f.count = text.size();
    f.bytes.assign(text);
  }

  bool contains(std::string_view name) const { return fields_.find(name) != fields_.end(); }
  /// True if some field's name starts with `prefix`.
  bool contains_prefix(std::string_view prefix) const {
    const auto it = fields_.lower_bound(prefix);
    return it != fields_.end() && std::string_view(it->first).starts_with(prefix);
  }
  /// Removes every field whose name starts with `prefix`.
  void erase_prefix(std::string_view prefix) {
    auto it = fields_.lower_bound(prefix);
    while (it != fields_.end() && std::string_view(it->first).starts_with(prefix)) it = fields_.erase(it);
  }
  std::size_t size() const noexcept { return fields_.size(); }

  /// The values of field `name`, which must have element type V. Throws checkpoint_error if it is missing or of
  /// another type.
  template <class V>
  std::vector<V> get(std::string_view name) const {
    const field& f = find(name, type_of<V>());
    std::vector<V> out(f.count);
    if (f.count > 0) std::memcpy(out.data(), f.bytes.data(), f.count * sizeof(V));
    return out;
  }
  /// The single value of field `name`; throws checkpoint_error if it does not hold exactly one.
  template <class V>
  V get_one(std::string_view name) const {
    const field& f = find(name, type_of<V>());
    if (f.count != 1) fail("field '" + std::string(name) + "' holds " + std::to_string(f.count) + " values, expected 1");
    V v;
    std::memcpy(&v, f.bytes.data(), sizeof(V));
    return v;
  }
  std::string get_text(std::string_view name) const { return find(name, checkpoint_field_type::text).bytes; }

  /// The whole file: header and payload.
  std::string serialize() const {
    std::string payload;
    for (const auto& [name, f] : fields_) {
      append(payload, static_cast<std::uint32_t>(name.size()));
      payload += name;
      payload += static_cast<char>(f.type);
      append(payload, static_cast<std::uint64_t>(f.count));
      payload += f.bytes;
    }
    std::string out = "BIPQCKPT";
    append(out, version);
    append(out, std::uint32_t{0});
    append(out, static_cast<std::uint64_t>(payload.size()));
    append(out, fnv1a(payload));
    return out + payload;
  }

  /// FNV-1a, 64 bits (Fowler, Noll, Vo): h ← (h ⊕ byte) · 1099511628211 from 14695981039346656037.
  static std::uint64_t fnv1a(std::string_view bytes) noexcept {
    std::uint64_t h = 14695981039346656037ULL;
    for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    return h;
  }

  static std::size_t element_size(checkpoint_field_type t) noexcept {
    return t == checkpoint_field_type::f32 ? 4 : t == checkpoint_field_type::text ? 1 : 8;
  }

 private:
  friend checkpoint_data parse_checkpoint(std::string_view, std::string_view);
  struct field {
    checkpoint_field_type type = checkpoint_field_type::text;
    std::size_t count = 0;
    std::string bytes;
  };

  template <class V>
  static constexpr checkpoint_field_type type_of() {
    if constexpr (std::is_same_v<V, float>) return checkpoint_field_type::f32;
    else if constexpr (std::is_same_v<V, double>) return checkpoint_field_type::f64;
    else return checkpoint_field_type::u64;
  }
  [[noreturn]] static void fail(const std::string& what) { throw checkpoint_error("checkpoint: " + what); }
  const field& find(std::string_view name, checkpoint_field_type type) const {
    const auto it = fields_.find(name);
    if (it == fields_.end()) fail("missing field '" + std::string(name) + "'");
    if (it->second.type != type) fail("field '" + std::string(name) + "' has another type");
    return it->second;
  }
  template <class U>
  static void append(std::string& s, U v) {
    char b[sizeof(U)];
    std::memcpy(b, &v, sizeof(U));
    s.append(b, sizeof(U));
  }

  std::map<std::string, field, std::less<>> fields_;
};

/// Parses a whole checkpoint file held in `bytes`; `source` names it in messages. Throws checkpoint_error saying
/// what is wrong: not a checkpoint (magic), another version, truncated (shorter than its header says), trailing
/// bytes, corrupt (checksum), a field out of bounds, an unknown type or a repeated name. Never reads out of bounds,
/// never allocates more than `bytes` holds.
checkpoint_data parse_checkpoint(std::string_view bytes, std::string_view source = "checkpoint");

/// The same on raw bytes (what a fuzzer calls).
inline checkpoint_data read_checkpoint(std::span<const std::byte> bytes) {
  return parse_checkpoint(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

/// Reads and parses the checkpoint file `path`. Throws checkpoint_error naming the file.
checkpoint_data read_checkpoint(const std::filesystem::path& path);

/// Writes `data` to `path` atomically (io::write_file_atomically: a temporary file, then a rename).
inline void write_checkpoint(const std::filesystem::path& path, const checkpoint_data& data) {
  write_file_atomically(path, data.serialize());
}

// ---------------------------------------------------------------------------------------------------------------

inline checkpoint_data parse_checkpoint(std::string_view bytes, std::string_view source) {
  const std::string where = std::string(source);
  auto fail = [&](const std::string& what) -> void { throw checkpoint_error("read_checkpoint(): " + where + ": " + what); };
  auto u32_at = [&](std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, bytes.data() + at, 4);
    return v;
  };
  auto u64_at = [&](std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, bytes.data() + at, 8);
    return v;
  };
  if (bytes.size() < 8 || bytes.substr(0, 8) != "BIPQCKPT") fail("not a bipq checkpoint (bad magic string)");
  if (bytes.size() < checkpoint_data::header_size)
    fail("truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the 32-byte header");
  if (u32_at(8) != checkpoint_data::version)
    fail("format version " + std::to_string(u32_at(8)) + ", this bipq reads version " +
         std::to_string(checkpoint_data::version));
  if (u32_at(12) != 0) fail("corrupt: the reserved header bytes 12-15 are not 0");
  const std::uint64_t payload_size = u64_at(16);
  const std::uint64_t available = bytes.size() - checkpoint_data::header_size;
  if (payload_size > available)
    fail("truncated: the header announces " + std::to_string(payload_size) + " payload bytes, the file holds " +
         std::to_string(available));
  if (payload_size < available) fail(std::to_string(available - payload_size) + " bytes after the payload");
  const std::string_view payload = bytes.substr(checkpoint_data::header_size);
  if (checkpoint_data::fnv1a(payload) != u64_at(24)) fail("corrupt: the checksum does not match the payload");

  checkpoint_data d;
  std::size_t at = checkpoint_data::header_size;
  const std::size_t end = bytes.size();
  while (at < end) {
    if (end - at < 4) fail("corrupt: a field header runs past the end");
    const std::size_t name_size = u32_at(at);
    at += 4;
    if (end - at < name_size + 1 + 8) fail("corrupt: a field header runs past the end");
    std::string name(bytes.substr(at, name_size));
    at += name_size;
    const auto type = static_cast<checkpoint_field_type>(static_cast<unsigned char>(bytes[at]));
    at += 1;
    if (type != checkpoint_field_type::u64 && type != checkpoint_field_type::f64 &&
        type != checkpoint_field_type::f32 && type != checkpoint_field_type::text)
      fail("corrupt: field '" + name + "' has unknown type " + std::to_string(static_cast<int>(type)));
    const std::uint64_t count = u64_at(at);
    at += 8;
    const std::size_t width = checkpoint_data::element_size(type);
    if (count > (end - at) / width) fail("corrupt: field '" + name + "' runs past the end");
    if (d.contains(name)) fail("corrupt: field '" + name + "' appears twice");
    checkpoint_data::field& f = d.fields_[name];
    f.type = type;
    f.count = static_cast<std::size_t>(count);
    f.bytes.assign(bytes.substr(at, f.count * width));
    at += f.count * width;
  }
  return d;
}

inline checkpoint_data read_checkpoint(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw checkpoint_error("read_checkpoint(): " + path.string() + ": cannot open file");
  std::error_code ec;
  const std::uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) throw checkpoint_error("read_checkpoint(): " + path.string() + ": cannot read its size");
  std::string bytes(static_cast<std::size_t>(size), '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size())) || in.peek() != std::char_traits<char>::eof())
    throw checkpoint_error("read_checkpoint(): " + path.string() + ": the file changed size while being read");
  return parse_checkpoint(bytes, path.string());
}

}  // namespace io

/// What a run does with an existing checkpoint file.
///   resume: continue from it when it exists (and refuse it if it belongs to another run); start afresh otherwise;
///   fresh:  ignore it and overwrite it at the first boundary.
enum class checkpoint_mode { resume, fresh };

/// Where a run keeps its checkpoint: pass it to a driver (`imp(problem, params, ck, callbacks...)`), to train() or to
/// bilevel_solver::optimize(). The run writes it after every epoch and round, and every `solver_every` upper
/// iterations of the bi-level solver; a run given a checkpoint in resume mode continues from it. A checkpoint made
/// with no file (the default constructor) does nothing, so callers can pass one unconditionally.
/// One checkpoint object serves one run at a time (a driver with the trainings and the solver it calls).
class checkpoint {
 public:
  checkpoint() = default;
  /// Throws std::invalid_argument if `solver_every` is 0.
  explicit checkpoint(std::filesystem::path file, checkpoint_mode mode = checkpoint_mode::resume,
                      std::size_t solver_every = 10)
      : file_(std::move(file)), mode_(mode), solver_every_(solver_every) {
    if (file_.empty()) throw std::invalid_argument("checkpoint(): 'file' must not be empty");
    if (solver_every_ == 0) throw std::invalid_argument("checkpoint(): 'solver_every' must be >= 1");
  }
  checkpoint(const checkpoint&) = delete;
  checkpoint& operator=(const checkpoint&) = delete;

  bool enabled() const noexcept { return !file_.empty(); }
  const std::filesystem::path& file() const noexcept { return file_; }
  std::size_t solver_every() const noexcept { return solver_every_; }
  /// True if the last run opened on this object continued from the file.
  bool resumed() const noexcept { return resumed_; }
  /// Checkpoint files written so far.
  std::size_t writes() const noexcept { return writes_; }

  // ---- used by the runs (drivers, train(), the solver) ----

  /// The state a layer of a run writes: adds its fields to the data.
  using layer_writer = std::function<void(io::checkpoint_data&)>;

  /// Opens a run: `method`, its `settings` (one "name=value" line per field) and the model's parameters. The first
  /// caller (the outermost run) owns it and gets true; nested runs (train() inside a driver) get false. In resume mode
  /// an existing file is read, checked against method, settings and model (throwing io::checkpoint_error naming what
  /// differs) and its parameter values are written into `params`.
  template <class T>
  bool open(std::string_view method, const std::string& settings, std::span<const parameter<T>> params) {
    if (!enabled() || open_) return false;
    open_ = true;
    resumed_ = false;
    loaded_ = {};
    header_ = {};
    header_.put_text("run.method", method);
    header_.put_text("run.settings", settings);
    header_.put_text("run.model", model_description(params));
    values_ = [params](io::checkpoint_data& d) {
      std::vector<T> all;
      for (const auto& p : params) all.insert(all.end(), p.value.begin(), p.value.end());
      d.put<T>("run.values", std::span<const T>(all));
    };
    if (mode_ == checkpoint_mode::resume && std::filesystem::exists(file_)) {
      try {
        io::checkpoint_data d = io::read_checkpoint(file_);
        check_same(d, "run.method", "written by another method");
        check_same(d, "run.model", "from another model");
        check_same(d, "run.settings", "from other settings");
        const std::vector<T> all = d.template get<T>("run.values");
        std::size_t off = 0;
        for (const auto& p : params) {
          if (all.size() - off < p.value.size()) throw io::checkpoint_error("checkpoint: 'run.values' is too short");
          std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(off), p.value.size(), p.value.begin());
          off += p.value.size();
        }
        if (off != all.size()) throw io::checkpoint_error("checkpoint: 'run.values' is too long");
        d.erase_prefix("run.");
        loaded_ = std::move(d);
        resumed_ = true;
      } catch (...) {
        open_ = false;
        throw;
      }
    }
    return true;
  }
  /// Ends the run opened by open().
  void close() noexcept {
    open_ = false;
    layers_.clear();
    values_ = nullptr;
  }
  bool is_open() const noexcept { return open_; }

  /// The fields still to be restored (those not yet taken by a layer), or null when the run did not resume.
  const io::checkpoint_data* pending() const noexcept { return resumed_ ? &loaded_ : nullptr; }
  /// True if fields starting with `prefix` remain to be restored.
  bool pending(std::string_view prefix) const { return resumed_ && loaded_.contains_prefix(prefix); }
  /// Marks the fields starting with `prefix` as restored.
  void take(std::string_view prefix) { loaded_.erase_prefix(prefix); }

  /// Adds a layer (driver, trainer, solver) whose fields every save() writes, until pop_layer().
  void push_layer(layer_writer w) { layers_.push_back(std::move(w)); }
  void pop_layer() { layers_.pop_back(); }

  /// Writes the run: its header, the parameter values and every layer's fields, atomically.
  void save() {
    if (!open_) return;
    io::checkpoint_data d = header_;
    values_(d);
    for (const auto& layer : layers_) layer(d);
    io::write_checkpoint(file_, d);
    ++writes_;
  }

  /// Parameter names and shapes, one "name [d0, d1, ...]" line each.
  template <class T>
  static std::string model_description(std::span<const parameter<T>> params) {
    std::string s;
    for (const auto& p : params) {
      s += p.name + " [";
      for (std::size_t i = 0; i < p.shape.size(); ++i) s += (i ? ", " : "") + std::to_string(p.shape[i]);
      s += "]\n";
    }
    return s;
  }

 private:
  /// Throws unless the text field `name` of `d` equals this run's, naming the first line that differs.
  void check_same(const io::checkpoint_data& d, std::string_view name, std::string_view what) const {
    const std::string theirs = d.get_text(name), ours = header_.get_text(name);
    if (theirs == ours) return;
    auto lines = [](const std::string& s) {
      std::vector<std::string> out;
      std::size_t at = 0;
      while (at < s.size()) {
        const std::size_t nl = std::min(s.find('\n', at), s.size());
        out.push_back(s.substr(at, nl - at));
        at = nl + 1;
      }
      return out;
    };
    const std::vector<std::string> a = lines(theirs), b = lines(ours);
    std::size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    const std::string was = i < a.size() ? "'" + a[i] + "'" : "nothing";
    const std::string now = i < b.size() ? "'" + b[i] + "'" : "nothing";
    throw io::checkpoint_error("checkpoint: " + file_.string() + " is " + std::string(what) + ": it has " + was +
                               " where this run has " + now + " (" + std::string(name) + ")");
  }

  std::filesystem::path file_;
  checkpoint_mode mode_ = checkpoint_mode::resume;
  std::size_t solver_every_ = 10;
  bool open_ = false, resumed_ = false;
  std::size_t writes_ = 0;
  io::checkpoint_data header_, loaded_;
  std::function<void(io::checkpoint_data&)> values_;
  std::vector<layer_writer> layers_;
};

/// Settings as text, one "name=value" line per field (doubles with 17 significant digits, so equal text means equal
/// bits): what a checkpoint stores to refuse a resume with other settings, naming the field.
class settings_text {
 public:
  template <class V>
  void operator()(std::string_view name, const V& v) {
    text_ += prefix_;
    text_ += name;
    text_ += '=';
    text_ += value(v);
    text_ += '\n';
  }
  /// Fields described inside `f` get "<name>." before their names.
  template <class F>
  void nested(std::string_view name, F&& f) {
    const std::string saved = prefix_;
    prefix_ += std::string(name) + ".";
    f();
    prefix_ = saved;
  }
  const std::string& str() const noexcept { return text_; }

 private:
  template <class V>
  static std::string value(const V& v) {
    if constexpr (std::is_same_v<V, bool>) {
      return v ? "true" : "false";
    } else if constexpr (requires { v.has_value(); *v; }) {  // std::optional
      return v.has_value() ? value(*v) : std::string("none");
    } else if constexpr (std::is_enum_v<V>) {
      return std::to_string(static_cast<long long>(v));
    } else if constexpr (std::is_floating_point_v<V>) {
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", static_cast<double>(v));
      return b;
    } else if constexpr (std::is_integral_v<V>) {
      return std::to_string(v);
    } else if constexpr (std::is_convertible_v<V, std::string_view>) {
      return std::string(std::string_view(v));
    } else {  // a vector of the above
      std::string s = "[";
      for (const auto& x : v) s += (s.size() > 1 ? ", " : "") + value(x);
      return s + "]";
    }
  }
  std::string text_, prefix_;
};

namespace detail {

/// What a checkpoint field holds element by element: unsigned integers (as u64), double, float.
template <class V>
concept checkpoint_scalar = std::unsigned_integral<V> || std::same_as<V, double> || std::same_as<V, float>;
/// A vector of those, or of vectors of those.
template <class V>
concept checkpoint_element = checkpoint_scalar<V> || requires { requires checkpoint_scalar<typename V::value_type>; };

/// Writes a layer's named values into checkpoint data; state_reader reads them back. A layer lists its state once,
/// as a generic function of either (`a("train.epoch", epoch); a("train.rng", gen); ...`).
class state_writer {
 public:
  explicit state_writer(io::checkpoint_data& d) : d_(d) {}
  static constexpr bool reading = false;

  template <class V>
    requires std::unsigned_integral<V> || std::same_as<V, double> || std::same_as<V, float>
  void operator()(std::string_view name, const V& v) {
    (*this)(name, std::span<const V>(&v, 1));
  }
  void operator()(std::string_view name, const bool& v) { (*this)(name, static_cast<std::uint64_t>(v)); }
  template <class V>
    requires std::unsigned_integral<V> || std::same_as<V, double> || std::same_as<V, float>
  void operator()(std::string_view name, std::span<const V> v) {
    if constexpr (std::unsigned_integral<V>) {
      std::vector<std::uint64_t> u(v.begin(), v.end());
      d_.put<std::uint64_t>(name, u);
    } else {
      d_.put<V>(name, v);
    }
  }
  template <class V>
  void operator()(std::string_view name, std::span<V> v) requires (!std::is_const_v<V>) {
    (*this)(name, std::span<const V>(v));
  }
  template <class V>
  void operator()(std::string_view name, const std::vector<V>& v) requires checkpoint_element<V> {
    if constexpr (requires { typename V::value_type; }) {  // nested: the values concatenated, and their sizes
      std::vector<std::uint64_t> sizes;
      std::vector<typename V::value_type> flat;
      for (const auto& x : v) {
        sizes.push_back(x.size());
        flat.insert(flat.end(), x.begin(), x.end());
      }
      (*this)(std::string(name) + ".sizes", std::span<const std::uint64_t>(sizes));
      (*this)(name, std::span<const typename V::value_type>(flat));
    } else {
      (*this)(name, std::span<const V>(v));
    }
  }
  /// Tensors of fixed sizes (parameter values, masks, momentum): concatenated, with their sizes.
  template <class V>
  void operator()(std::string_view name, const std::vector<std::span<V>>& v) {
    std::vector<std::vector<std::remove_const_t<V>>> copy;
    for (const auto& x : v) copy.emplace_back(x.begin(), x.end());
    (*this)(name, copy);
  }
  void operator()(std::string_view name, const std::string& s) { d_.put_text(name, s); }
  void operator()(std::string_view name, const rng& g) {
    const std::array<std::uint64_t, 4> s = g.state();
    d_.put<std::uint64_t>(name, s);
  }
  /// Anything else: by its own checkpoint_fields(a, name, value) (found by argument-dependent lookup).
  template <class V>
  void operator()(std::string_view name, const V& v) requires requires(state_writer& a) { checkpoint_fields(a, name, v); } {
    checkpoint_fields(*this, name, v);
  }

 private:
  io::checkpoint_data& d_;
};

class state_reader {
 public:
  explicit state_reader(const io::checkpoint_data& d) : d_(d) {}
  static constexpr bool reading = true;

  template <class V>
    requires std::unsigned_integral<V> || std::same_as<V, double> || std::same_as<V, float>
  void operator()(std::string_view name, V& v) {
    (*this)(name, std::span<V>(&v, 1));
  }
  void operator()(std::string_view name, bool& v) {
    std::uint64_t u = 0;
    (*this)(name, u);
    v = u != 0;
  }
  /// Into fixed-size storage: the field must have exactly v.size() values.
  template <class V>
    requires std::unsigned_integral<V> || std::same_as<V, double> || std::same_as<V, float>
  void operator()(std::string_view name, std::span<V> v) {
    const auto values = read<V>(name);
    check_size(name, values.size(), v.size());
    std::copy(values.begin(), values.end(), v.begin());
  }
  template <class V>
  void operator()(std::string_view name, std::vector<V>& v) requires checkpoint_element<V> {
    if constexpr (requires { typename V::value_type; }) {
      using E = typename V::value_type;
      const std::vector<std::uint64_t> sizes = read<std::uint64_t>(std::string(name) + ".sizes");
      const std::vector<E> flat = read<E>(name);
      std::uint64_t sum = 0;
      for (std::uint64_t s : sizes) {
        if (s > flat.size() - sum) throw io::checkpoint_error("checkpoint: field '" + std::string(name) + "' is too short");
        sum += s;
      }
      if (sum != flat.size()) throw io::checkpoint_error("checkpoint: field '" + std::string(name) + "' is too long");
      v.assign(sizes.size(), V{});
      std::size_t off = 0;
      for (std::size_t i = 0; i < sizes.size(); ++i) {
        v[i].assign(flat.begin() + static_cast<std::ptrdiff_t>(off),
                    flat.begin() + static_cast<std::ptrdiff_t>(off + sizes[i]));
        off += static_cast<std::size_t>(sizes[i]);
      }
    } else {
      v = read<V>(name);
    }
  }
  /// Into tensors of fixed sizes: the field must hold as many tensors of the same sizes.
  template <class V>
  void operator()(std::string_view name, const std::vector<std::span<V>>& v) requires (!std::is_const_v<V>) {
    std::vector<std::vector<V>> values;
    (*this)(name, values);
    if (values.size() != v.size())
      throw io::checkpoint_error("checkpoint: field '" + std::string(name) + "' has " + std::to_string(values.size()) +
                                 " tensors, this run expects " + std::to_string(v.size()));
    for (std::size_t i = 0; i < v.size(); ++i) (*this).check_size(name, values[i].size(), v[i].size());
    for (std::size_t i = 0; i < v.size(); ++i) std::copy(values[i].begin(), values[i].end(), v[i].begin());
  }
  void operator()(std::string_view name, std::string& s) { s = d_.get_text(name); }
  void operator()(std::string_view name, rng& g) {
    std::array<std::uint64_t, 4> s{};
    (*this)(name, std::span<std::uint64_t>(s));
    g.set_state(s);
  }
  template <class V>
  void operator()(std::string_view name, V& v) requires requires(state_reader& a) { checkpoint_fields(a, name, v); } {
    checkpoint_fields(*this, name, v);
  }

 private:
  static void check_size(std::string_view name, std::size_t have, std::size_t want) {
    if (have != want)
      throw io::checkpoint_error("checkpoint: field '" + std::string(name) + "' has " + std::to_string(have) +
                                 " values where this run expects " + std::to_string(want));
  }
  template <class V>
  std::vector<V> read(std::string_view name) const {
    if constexpr (std::unsigned_integral<V>) {
      const std::vector<std::uint64_t> u = d_.get<std::uint64_t>(name);
      std::vector<V> out(u.size());
      for (std::size_t i = 0; i < u.size(); ++i) {
        if (u[i] > std::numeric_limits<V>::max())
          throw io::checkpoint_error("checkpoint: field '" + std::string(name) + "' holds a value out of range");
        out[i] = static_cast<V>(u[i]);
      }
      return out;
    } else {
      return d_.get<V>(name);
    }
  }
  const io::checkpoint_data& d_;
};

/// One layer of a run for the duration of a scope: registers `state` (a generic function of state_writer or
/// state_reader) with the checkpoint, restores it if the checkpoint holds fields under `prefix`, and unregisters it
/// at the end of the scope. With a null or disabled checkpoint it does nothing.
template <class State>
class checkpoint_layer {
 public:
  checkpoint_layer(checkpoint* ck, std::string prefix, State state)
      : ck_(ck && ck->is_open() ? ck : nullptr), prefix_(std::move(prefix)), state_(std::move(state)) {
    if (!ck_) return;
    ck_->push_layer([this](io::checkpoint_data& d) {
      state_writer w(d);
      state_(w);
    });
  }
  checkpoint_layer(const checkpoint_layer&) = delete;
  checkpoint_layer& operator=(const checkpoint_layer&) = delete;
  ~checkpoint_layer() {
    if (ck_ && ck_->is_open()) ck_->pop_layer();
  }

  /// Restores the layer's state if the checkpoint holds it (and marks it restored); true if it did.
  bool restore() {
    if (!ck_ || !ck_->pending(prefix_)) return false;
    state_reader r(*ck_->pending());
    state_(r);
    ck_->take(prefix_);
    return true;
  }
  /// Writes the checkpoint (every layer).
  void save() {
    if (ck_) ck_->save();
  }
  bool active() const noexcept { return ck_ != nullptr; }

 private:
  checkpoint* ck_;
  std::string prefix_;
  State state_;
};

/// Opens `ck` for the run of `method` if no outer run has (and closes it at the end of the scope).
class checkpoint_run {
 public:
  template <class T>
  checkpoint_run(checkpoint* ck, std::string_view method, const std::string& settings,
                 std::span<const parameter<T>> params)
      : ck_(ck && ck->open(method, settings, params) ? ck : nullptr) {}
  checkpoint_run(const checkpoint_run&) = delete;
  checkpoint_run& operator=(const checkpoint_run&) = delete;
  ~checkpoint_run() {
    if (ck_) ck_->close();
  }
  /// True if this scope opened the checkpoint (the outermost run).
  bool owner() const noexcept { return ck_ != nullptr; }

 private:
  checkpoint* ck_;
};

}  // namespace detail
}  // namespace bipq
