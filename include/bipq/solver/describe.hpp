#pragma once
// The bi-level solver's settings as "name=value" lines: what a checkpoint stores to refuse a resume with other
// settings, naming the field. Every field of bilevel_settings is listed; the static_assert fails when a field is
// added to the struct and not here.

#include "bipq/io/checkpoint.hpp"
#include "bipq/solver/params.hpp"

namespace bipq {

inline void describe_settings(settings_text& d, const bilevel_settings& s) {
  static_assert(detail::field_count<bilevel_settings>() == 19, "describe every field of bilevel_settings");
  d("lower_learning_rate", s.lower_learning_rate);
  d("momentum", s.momentum);
  d("gamma", s.gamma);
  d("lower_steps", s.lower_steps);
  d("lower_schedule", s.lower_schedule);
  d("upper_learning_rate", s.upper_learning_rate);
  d("upper_momentum", s.upper_momentum);
  d("upper_weight_decay", s.upper_weight_decay);
  d("upper_schedule", s.upper_schedule);
  d("batch_size", s.batch_size);
  d("parametrization", s.parametrization);
  d("start", s.start);
  d("ig_mode", s.ig_mode);
  d("second_term_coefficient", s.second_term_coefficient);
  d("cg_max_iterations", s.cg_max_iterations);
  d("cg_tolerance", s.cg_tolerance);
  d("stable_mask_iterations", s.stable_mask_iterations);
  d("evaluate_every", s.evaluate_every);
  d("seed", s.seed);
}

inline void describe_settings(settings_text& d, const bilevel_params& p) {
  describe_settings(d, static_cast<const bilevel_settings&>(p));
  d.nested("mask", [&] { describe_settings(d, p.mask); });
  d("iterations", p.iterations);
}

}  // namespace bipq
