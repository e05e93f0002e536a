# The registry test harness (tests/registry_harness/harness.h) as the static library
# kiln_registry_harness.  Any CMakeLists that needs it includes this file; the target is defined
# once.  Users include "tests/registry_harness/harness.h" and add `tests/registry_harness` to
# their include view: kiln_attach_view(<target> <their folders> tests/registry_harness).
if(NOT TARGET kiln_registry_harness)
  add_library(kiln_registry_harness STATIC ${CMAKE_SOURCE_DIR}/tests/registry_harness/harness.cc)
  kiln_compile_options(kiln_registry_harness)
  target_compile_definitions(kiln_registry_harness PRIVATE
    KILN_REGISTRY_HARNESS_DIR="${CMAKE_SOURCE_DIR}/tests/registry_harness")
  target_link_libraries(kiln_registry_harness PUBLIC kiln_base nlohmann_json::nlohmann_json
                                                     absl::status absl::statusor absl::strings
                                                     absl::time)
  kiln_attach_view(kiln_registry_harness base tests/registry_harness)
endif()
