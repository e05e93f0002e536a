// Reading a marshaled pb.Definition: the LLB graph a client or frontend sends.
//
// Each element of Definition.def is one marshaled pb.Op.  A vertex's identity is
// "sha256:" + hex(sha256(those exact bytes)); the bytes are kept as received and never
// re-marshaled, so digests (and with them cache keys and progress vertex ids) are exactly the
// sender's.  Identical byte strings are the same vertex and are kept once.
//
// ParsedDefinition only checks that the bytes parse; graph rules (a terminal op, no cycles, no
// dangling inputs, valid indexes, sane values) are checked by Validate() in llb/validate.h.  A
// ParsedDefinition that has not been validated may be inconsistent; its accessors still never
// crash (lookups return nullptr, TopologicalOrder() reports cycles and dangling edges).
//
// The terminal op is the op without an op body that carries the result edge.  BuildKit's client
// always puts it last; when the ops of a definition arrive in another order, the unique op
// without a body is taken.  With no such op the last element is the terminal, as BuildKit's
// solver does (Validate() then rejects it unless it has inputs).
//
// Thread-safety: immutable after Parse(); safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "base/digest.h"
#include "google/protobuf/message_lite.h"
#include "llb/pb/ops.pb.h"

namespace kiln::llb {

// One distinct vertex of a definition.
struct ParsedOp {
  Digest digest;      // sha256 of `bytes`
  std::string bytes;  // exactly as received
  pb::Op op;          // parsed from `bytes`
};

class ParsedDefinition {
 public:
  // Parses a marshaled pb.Definition.  InvalidArgument when the Definition or one of its ops is
  // not valid protobuf (the message names the index of the bad op).  Protobuf's own logging is
  // silenced (process-wide, via LogSilencer) while parsing, so hostile bytes leave no log lines.
  static absl::StatusOr<ParsedDefinition> Parse(std::string_view definition_bytes);
  // Same from an already parsed message (ops are still parsed and hashed from def's bytes).
  static absl::StatusOr<ParsedDefinition> FromProto(pb::Definition def);

  // Builds a definition from ops whose digests the caller vouches for, in the given order (the
  // last one is the terminal candidate as in FromProto).  For tests of graph rules that honest
  // digests make unreachable (an op's digest covers its inputs' digests, so real bytes cannot
  // form a cycle); never use it on received data.
  static ParsedDefinition FromTrustedOpsForTest(std::vector<ParsedOp> ops);

  ParsedDefinition(ParsedDefinition&&) = default;
  ParsedDefinition& operator=(ParsedDefinition&&) = default;

  // Distinct ops in order of first appearance (the terminal op included).
  const std::vector<ParsedOp>& ops() const { return ops_; }
  // Number of elements of Definition.def, duplicates included.
  size_t raw_op_count() const { return raw_op_count_; }

  // nullptr when the digest is not in the definition.
  const ParsedOp* Find(const Digest& digest) const;
  const ParsedOp* Find(std::string_view digest) const;

  // The metadata recorded for `digest`, or nullptr when there is none.
  const pb::OpMetadata* Metadata(const Digest& digest) const;
  const google::protobuf::Map<std::string, pb::OpMetadata>& metadata() const {
    return def_.metadata();
  }
  // The source map (empty when the sender attached none).
  const pb::Source& source_map() const { return def_.source(); }

  // The terminal op (see the file comment); nullptr only for an empty definition.
  const ParsedOp* terminal() const { return terminal_ < 0 ? nullptr : &ops_[terminal_]; }
  // The solve result: the terminal op's first input.  nullptr when the terminal has no input.
  const pb::Input* result() const;

  // Every op except the terminal, inputs before the ops that use them; among independent ops the
  // definition's order is kept.  FailedPrecondition naming the op for a cycle; NotFound for an
  // input digest that is not in the definition.  Iterative: deep chains do not recurse.
  absl::StatusOr<std::vector<const ParsedOp*>> TopologicalOrder() const;

  // The definition as received (def holds the raw op bytes, duplicates included).
  const pb::Definition& proto() const { return def_; }

 private:
  ParsedDefinition() = default;
  void ChooseTerminal(int64_t last);

  pb::Definition def_;
  std::vector<ParsedOp> ops_;
  std::unordered_map<std::string, size_t> index_;  // digest string -> ops_ position
  size_t raw_op_count_ = 0;
  int64_t terminal_ = -1;
};

// Serializes with protobuf's deterministic mode: fields in field-number order, map entries sorted
// by key.  This is what BuildKit's gogo "stable marshaler" writes, so op bytes (and digests) made
// by Kiln equal Go's for the same values.
std::string SerializeDeterministic(const google::protobuf::MessageLite& message);

// "sha256:<hex>" of `op_bytes`: the vertex digest.
inline Digest OpDigest(std::string_view op_bytes) { return Digest::Sha256Of(op_bytes); }

}  // namespace kiln::llb
