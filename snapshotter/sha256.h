// A sha256 state that can report the digest so far without ending the stream (ContentWriter::
// digest(), resumable ingests).  base's Sha256Hasher resets on Finish; this one can Peek.
//
// Thread-safety: one thread at a time.
#pragma once

#include <cstddef>
#include <memory>

#include "base/digest.h"

namespace kiln::snapshotter {

class Sha256State {
 public:
  Sha256State();
  ~Sha256State();
  Sha256State(const Sha256State&) = delete;
  Sha256State& operator=(const Sha256State&) = delete;

  void Update(const void* data, size_t n);
  // Digest of everything so far; the state continues.
  Digest Peek() const;
  void Reset();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace kiln::snapshotter
