#include "engine/solver/memory_cache_storage.h"

#include "engine/solver/cache_storage_conformance.h"

namespace kiln::engine::testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Memory, CacheStorageConformance,
    ::testing::Values(CacheStorageFactory{
        "memory",
        [](const std::string&) -> absl::StatusOr<std::unique_ptr<CacheStorage>> {
          return std::unique_ptr<CacheStorage>(std::make_unique<MemoryCacheStorage>());
        },
        false}),
    PrintFactory);

}  // namespace
}  // namespace kiln::engine::testing
