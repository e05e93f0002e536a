// Content digests in OCI form: "<algorithm>:<hex>".
//
// Kiln addresses everything it stores by sha256: LLB vertices (sha256 of the op bytes as
// received), blobs in the content store, layer diffIDs.  Digest is a small validated value type;
// Sha256Hasher computes one incrementally so a stream never has to be held in memory.
//
// Thread-safety: Digest is an immutable value.  A Sha256Hasher must not be used from two threads
// at once.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kiln {

class Digest {
 public:
  Digest() = default;  // The empty digest; valid() is false.

  // Accepts "sha256:<64 lowercase hex>" (and "sha512:<128 hex>", which Kiln only stores and
  // compares).  Anything else is InvalidArgument naming the bad value.
  static absl::StatusOr<Digest> Parse(std::string_view text);

  // sha256 of `data`.
  static Digest Sha256Of(std::string_view data);

  // Builds "sha256:<hex>" from a raw 32-byte hash.
  static Digest FromSha256Bytes(const std::array<uint8_t, 32>& raw);

  bool valid() const { return !value_.empty(); }
  const std::string& str() const { return value_; }
  std::string_view algorithm() const;
  std::string_view hex() const;

  auto operator<=>(const Digest&) const = default;

  template <typename H>
  friend H AbslHashValue(H h, const Digest& d) {
    return H::combine(std::move(h), d.value_);
  }

 private:
  explicit Digest(std::string value) : value_(std::move(value)) {}
  std::string value_;
};

// Incremental sha256 over OpenSSL's EVP interface.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;

  void Update(const void* data, size_t len);
  void Update(std::string_view data) { Update(data.data(), data.size()); }

  // Returns the digest of everything written so far and resets the hasher for reuse.
  Digest Finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string HexEncode(const void* data, size_t len);

}  // namespace kiln
