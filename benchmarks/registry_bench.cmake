# registry_bench (benchmarks/registry_bench.cc), driven by benchmarks/registry_push_bench.sh.
# Included from registry/CMakeLists.txt; defined once.
if(NOT TARGET registry_bench)
  kiln_executable(registry_bench
    SOURCES ${CMAKE_SOURCE_DIR}/benchmarks/registry_bench.cc
    DEPS registry
    LIBS nlohmann_json::nlohmann_json)
endif()
