// The core-only consumer's include path holds the standard library and bipq, not Eigen nor xtensor. Checked in a
// translation unit of its own: after a failed __has_include, GCC 12 lets a later #include of the same header pass
// silently (GCC bug 80753), which would hide exactly the error main.cpp is there to give.
#if defined(BIPQ_CONSUMER_STANDARD_LIBRARY_ONLY)
#if __has_include(<Eigen/Core>) || __has_include(<xtensor/xarray.hpp>) || __has_include(<xtl/xtl_config.hpp>)
#error "Eigen, xtensor or xtl is on the include path of the core-only consumer"
#endif
#endif
