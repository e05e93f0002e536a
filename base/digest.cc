#include "base/digest.h"

#include <openssl/evp.h>

#include "base/strings.h"
#include "base/status.h"

namespace kiln {
namespace {

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string HexEncode(const void* data, size_t len) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* p = static_cast<const uint8_t*>(data);
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 0xf];
  }
  return out;
}

absl::StatusOr<Digest> Digest::Parse(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        StrCat("invalid digest ", Quote(text), ": missing algorithm prefix"));
  }
  std::string_view algo = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  size_t want = 0;
  if (algo == "sha256") {
    want = 64;
  } else if (algo == "sha512") {
    want = 128;
  } else {
    return absl::InvalidArgumentError(
        StrCat("invalid digest ", Quote(text), ": unsupported algorithm ", Quote(algo)));
  }
  if (hex.size() != want || !IsLowerHex(hex)) {
    return absl::InvalidArgumentError(StrCat("invalid digest ", Quote(text), ": expected ",
                                                   want, " lowercase hex characters"));
  }
  return Digest(std::string(text));
}

Digest Digest::Sha256Of(std::string_view data) {
  Sha256Hasher h;
  h.Update(data);
  return h.Finish();
}

Digest Digest::FromSha256Bytes(const std::array<uint8_t, 32>& raw) {
  return Digest(StrCat("sha256:", HexEncode(raw.data(), raw.size())));
}

std::string_view Digest::algorithm() const {
  std::string_view v = value_;
  return v.substr(0, v.find(':'));
}

std::string_view Digest::hex() const {
  std::string_view v = value_;
  size_t colon = v.find(':');
  return colon == std::string_view::npos ? std::string_view() : v.substr(colon + 1);
}

struct Sha256Hasher::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256Hasher::Sha256Hasher() : ctx_(std::make_unique<Ctx>()) {
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
}

Sha256Hasher::~Sha256Hasher() = default;

void Sha256Hasher::Update(const void* data, size_t len) {
  EVP_DigestUpdate(ctx_->md, data, len);
}

Digest Sha256Hasher::Finish() {
  std::array<uint8_t, 32> raw{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_->md, raw.data(), &n);
  EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr);
  return Digest::FromSha256Bytes(raw);
}

}  // namespace kiln
