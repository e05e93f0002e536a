#include "snapshotter/sha256.h"

#include <array>

#include <openssl/evp.h>

namespace kiln::snapshotter {

struct Sha256State::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256State::Sha256State() : ctx_(std::make_unique<Ctx>()) { Reset(); }
Sha256State::~Sha256State() = default;

void Sha256State::Reset() { EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr); }

void Sha256State::Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_->md, data, n); }

Digest Sha256State::Peek() const {
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_->md);
  std::array<uint8_t, 32> raw{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, raw.data(), &len);
  EVP_MD_CTX_free(copy);
  return Digest::FromSha256Bytes(raw);
}

}  // namespace kiln::snapshotter
